"""Train / fine-tune a kpt_plugin (MMPose) model: ``python tools/train.py CONFIG`` or
``mim train kpt_plugin CONFIG``.

Multi-process runs go through mmengine's launchers: ``torchrun --nproc_per_node N tools/train.py CONFIG
--launcher pytorch`` (CUDA: NCCL; CPU: gloo), ``--launcher slurm`` under ``srun`` as MMPose does.

Checkpoints are written atomically and carry the run's random state, so ``--resume`` after ``kill -9`` continues
bit for bit (``kpt_plugin.training``). User errors (dataset, weights, options) end with one line and exit code 2;
``--debug`` shows their traceback instead.
"""
import argparse
import os
import os.path as osp
import sys

# Importable from a source checkout without installing (mim runs an installed copy instead).
_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_REPO, 'kpt_plugin', '__init__.py')) and _REPO not in sys.path:
    sys.path.insert(0, _REPO)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a kpt_plugin / MMPose model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints (default ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a value from the latest one in the work dir')
    parser.add_argument('--load-from', help='initialise from these weights (overrides load_from in the config)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (CUDA / NPU only)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by (processes x batch size) / auto_scale_lr.base_batch_size')
    parser.add_argument('--device', help='cpu, cuda, cuda:N, gpu, gpu:N, npu, npu:N (default: the best available)')
    parser.add_argument('--seed', type=int, help='random seed (sets randomness.seed)')
    parser.add_argument('--deterministic', action='store_true', help='deterministic cuDNN / algorithms')
    parser.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override config settings, e.g. data_root=data/mine/ train_cfg.max_epochs=10; '
                        'top-level variables of the config file (data_root, train_ann_file, ...) are substituted '
                        'before the file is evaluated so values derived from them follow')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--debug', action='store_true',
                        help='raise user errors (dataset, weights) with their traceback instead of one line')
    # torch.distributed.launch (used by `mim train --launcher pytorch`) passes --local-rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _fail(msg):
    print(f'train.py: error: {msg}', file=sys.stderr)
    sys.exit(2)


def select_device(device, launcher):
    """Validate ``--device`` and make mmengine use it; returns the torch device string."""
    if device is not None and device.strip().lower() == 'cpu':
        # hide accelerators before anything initialises them: mmengine picks cuda/npu when visible
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
        os.environ['ASCEND_RT_VISIBLE_DEVICES'] = ''
    from kpt_plugin.inference.device import DeviceError, parse_device
    try:
        dev = parse_device(device)
    except DeviceError as e:
        _fail(str(e))
    kind, _, index = dev.partition(':')
    if index:
        if launcher != 'none':
            _fail(f'--device {device} names one device; with --launcher {launcher} each process uses its '
                  f'LOCAL_RANK device, so pass --device {kind}')
        import torch
        getattr(torch, kind).set_device(int(index))
    return dev


def build_cfg(args, device):
    from mmengine.config import DictAction
    from kpt_plugin.cli.cfg_utils import load_config

    options = None
    if args.cfg_options:
        ns = argparse.Namespace()
        DictAction(option_strings=['--cfg-options'], dest='opts')(None, ns, args.cfg_options)
        options = ns.opts
    try:
        cfg = load_config(args.config, options)
    except FileNotFoundError as e:
        _fail(str(e))

    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.load_from is not None:
        cfg.load_from = args.load_from
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            _fail(f'--resume {args.resume}: no such checkpoint')
        cfg.resume = True
        cfg.load_from = args.resume
    load_from = cfg.get('load_from')
    if load_from and '://' not in load_from and not osp.isfile(load_from):
        _fail(f'load_from {load_from!r} not found: convert the official weights with `kpt-plugin convert` '
              '(docs/training.md) and pass --load-from PATH, or --cfg-options load_from=None to train from scratch')
    if args.amp:
        if not device.startswith(('cuda', 'npu')):
            _fail(f'--amp needs a CUDA or NPU device; this run uses {device}')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            _fail(f'--amp does not support the custom optimizer wrapper {wrapper!r}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            _fail('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.seed is not None or args.deterministic:
        cfg.randomness = dict(cfg.get('randomness') or {})
        if args.seed is not None:
            cfg.randomness['seed'] = args.seed
        if args.deterministic:
            cfg.randomness['deterministic'] = True
    if device == 'cpu' and args.launcher != 'none':
        # CPU processes talk over gloo; DDP must not be given a GPU index
        cfg.env_cfg = dict(cfg.get('env_cfg') or {})
        cfg.env_cfg['dist_cfg'] = dict(cfg.env_cfg.get('dist_cfg') or {}, backend='gloo')
        wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
        wrapper_cfg['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper_cfg
    return cfg


def check_checkpoints(cfg):
    """Read the checkpoint the run starts from before the runner does, so a bad one fails in one line.

    ``--resume`` without a path picks the newest checkpoint of the work dir that loads (saying which newer ones it
    skips). Returns the ``load_from`` checkpoint of a fresh run (None when resuming or remote).
    """
    from kpt_plugin.training import latest_usable_checkpoint, read_checkpoint
    load_from = cfg.get('load_from')
    if cfg.get('resume'):
        if load_from is None:  # mmengine's auto resume reads last_checkpoint blindly: choose here instead
            path, skipped = latest_usable_checkpoint(cfg.work_dir)
            for _, why in skipped:
                print(f'train.py: warning: {why}', file=sys.stderr)
            if path is not None:
                if skipped:
                    print(f'train.py: warning: --resume: resuming from {path}, the newest checkpoint that loads',
                          file=sys.stderr)
                cfg.load_from = path
        else:
            read_checkpoint(load_from, '--resume', training=True)
        return None
    if load_from and '://' not in load_from:
        return read_checkpoint(load_from, 'load_from')
    return None


def warn_folded_bn(cfg, checkpoint=None):
    """Warn when BN would train on weights whose BN is folded into the convolutions (no statistics)."""
    load_from = cfg.get('load_from')
    backbone = cfg.get('model', {}).get('backbone', {})
    if cfg.get('resume') or not load_from or not osp.isfile(load_from) or backbone.get('norm_eval'):
        return
    if checkpoint is None:
        from weight_convert.io import load_checkpoint
        checkpoint = load_checkpoint(load_from, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    means = [v for k, v in state.items() if k.endswith('running_mean')]
    if means and all(not v.any() for v in means):
        from mmengine.logging import print_log
        print_log(f'load_from {load_from} has BatchNorm folded into its convolutions (all running means are 0); '
                  'training BN (model.backbone.norm_eval=False) renormalises every layer and destroys these '
                  'weights. Pass --cfg-options model.backbone.norm_eval=True.', logger='current', level=30)


def init_cpu_dist(cfg):
    """mmengine's pytorch launcher calls torch.cuda.set_device; on CPU set the process group up here."""
    import torch.distributed as dist
    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def main(argv=None):
    args = parse_args(argv)
    device = select_device(args.device, args.launcher)

    import kpt_plugin  # noqa: F401  (compat fixes + registration, also for configs without custom_imports)
    from kpt_plugin.errors import KptError
    from weight_convert.safe_pickle import UnsafePickleError
    try:
        return train(args, device)
    except (KptError, UnsafePickleError) as e:  # user errors (dataset, weights, refused pickles); bugs keep theirs
        if args.debug:
            raise
        _fail(' '.join(str(e).split('\n')))


def train(args, device):
    from mmengine.logging import print_log
    from mmengine.runner import Runner
    from kpt_plugin.cli.cfg_utils import sync_num_keypoints
    from kpt_plugin.training import add_training_hooks

    cfg = build_cfg(args, device)
    try:
        sync_num_keypoints(cfg, log=print_log)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(f'cannot read the keypoint metainfo of the training dataset: {e}')
    add_training_hooks(cfg)
    warn_folded_bn(cfg, check_checkpoints(cfg))
    if device == 'cpu' and args.launcher == 'pytorch':
        init_cpu_dist(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
