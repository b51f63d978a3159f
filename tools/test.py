#!/usr/bin/env python
"""Evaluate a kpt_plugin checkpoint (COCO OKS AP), like MMPose's ``tools/test.py``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json] [--no-flip]
        [--cfg-options test_dataloader.dataset.data_root=... test_dataloader.dataset.bbox_file=...]

``mim test kpt_plugin CONFIG --checkpoint CHECKPOINT`` runs this script. It shows a progress bar and
the time per image and per instance, prints the metrics table and writes it (with run details) to ``--out``
(default ``WORK_DIR/metrics.json``). Exit status 2 on a bad input (missing file, malformed json).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

# From a source checkout, evaluate the checkout's kpt_plugin (not an older installed copy).
_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_REPO, 'kpt_plugin', '__init__.py')) and _REPO not in sys.path:
    sys.path.insert(0, _REPO)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a kpt_plugin (PP-TinyPose) checkpoint')
    parser.add_argument('config', help='config file (e.g. configs/pp_tinypose/...-128x96.py)')
    parser.add_argument('checkpoint', help='checkpoint (.pth, e.g. from `kpt-plugin convert`)')
    parser.add_argument('--work-dir', help='directory for logs and results (default ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--out', help='metrics json to write (default WORK_DIR/metrics.json)')
    parser.add_argument('--no-flip', action='store_true', help='disable the flip test')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override config keys, e.g. test_dataloader.dataset.data_root=data/coco/ '
        'test_dataloader.dataset.ann_file=... test_dataloader.dataset.data_prefix.img=val2017/ '
        'test_dataloader.dataset.bbox_file=... test_evaluator.outfile_prefix=...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def metrics_table(metrics: dict) -> str:
    """Markdown table of the metrics (3 decimals, ppdet's / MMPose's AP-table layout)."""
    names = [k.split('/', 1)[-1] for k in metrics]
    values = [f'{v:.3f}' if isinstance(v, float) else str(v) for v in metrics.values()]
    return '\n'.join(['| ' + ' | '.join(names) + ' |', '|' + '---|' * len(names), '| ' + ' | '.join(values) + ' |'])


def write_json_atomic(path: str, data) -> None:
    from kpt_plugin.fileio import atomic_write_json
    atomic_write_json(path, data)


def build_cfg(args) -> Config:
    for what, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.no_flip:
        cfg.model.setdefault('test_cfg', {})['flip_test'] = False
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'PPTestProgressHook']
    cfg.custom_hooks.append(dict(type='PPTestProgressHook'))
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    import kpt_plugin  # noqa: F401  (registers our modules; configs also custom_import it)
    from kpt_plugin.datasets import PPDatasetError
    from mmengine.runner import Runner
    try:
        cfg = build_cfg(args)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    except (FileNotFoundError, PPDatasetError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if runner.rank != 0:
        return 0
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PPTestProgressHook')
    table = metrics_table(metrics)
    print(table)
    out = args.out or osp.join(cfg.work_dir, 'metrics.json')
    write_json_atomic(out, dict(
        config=args.config, checkpoint=args.checkpoint,
        flip_test=bool(cfg.model.get('test_cfg', {}).get('flip_test', False)),
        num_instances=hook.num_instances, num_images=hook.num_images,
        seconds_per_instance=hook.seconds_per_instance, seconds_per_image=hook.seconds_per_image,
        metrics={k: float(v) for k, v in metrics.items()}))
    print(f'metrics written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
