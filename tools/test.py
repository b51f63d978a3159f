#!/usr/bin/env python
"""Evaluate a kpt_plugin checkpoint (COCO OKS AP), like MMPose's ``tools/test.py``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json] [--no-flip]
        [--cfg-options test_dataloader.dataset.data_root=... test_dataloader.dataset.bbox_file=...]

``mim test kpt_plugin CONFIG --checkpoint CHECKPOINT`` runs this script. It shows a progress bar and
the time per image and per instance, prints the metrics table and writes it (with run details) to ``--out``
(default ``WORK_DIR/metrics.json``). Exit status 2 on a bad input (missing file, malformed json); the annotation
file(s) and ``bbox_file`` are checked before the Runner is built, so a data error is one line naming the file, the
entry and the fix (not the Runner's environment and config dump first).
"""
import argparse
import os
import os.path as osp
import sys
import warnings

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
    from weight_convert.io import atomic_write_json
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


def _datasets(ds_cfg):
    """The leaf dataset configs of ``ds_cfg`` (through ConcatDataset / CombinedDataset / wrapper datasets)."""
    if 'datasets' in ds_cfg:
        return [leaf for d in ds_cfg['datasets'] for leaf in _datasets(d)]
    if 'dataset' in ds_cfg:
        return _datasets(ds_cfg['dataset'])
    return [ds_cfg]


def _num_keypoints(ds_cfg):
    """Joints per instance from the dataset's metainfo (the config's, else its class's), as the dataset will."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.registry import DATASETS
    cls = DATASETS.get(ds_cfg['type']) if isinstance(ds_cfg.get('type'), str) else ds_cfg.get('type')
    meta = ds_cfg.get('metainfo') or getattr(cls, 'METAINFO', None)
    if not meta:
        return None
    with warnings.catch_warnings():  # mmpose's 'matched config file will be used instead': the dataset says it again
        warnings.simplefilter('ignore', UserWarning)
        return parse_pose_metainfo(dict(meta))['num_keypoints']


def check_data(cfg) -> None:
    """Check the test dataloader's annotation file(s), bbox_file and the evaluator's ann_file before the Runner.

    Raises:
        DatasetError: the first problem (file, entry, what to do), as the dataset itself would raise it.
    """
    from mmengine.utils import is_abs

    from kpt_plugin.datasets.coco_schema import check_coco, check_detections, load_json, raise_first
    from kpt_plugin.errors import DatasetError

    def load(path, what):
        data, problem = load_json(path)
        if problem is not None:
            raise DatasetError(f'{what} {problem}')
        return data

    evaluators = cfg.get('test_evaluator') or []
    eval_files = {e['ann_file'] for e in (evaluators if isinstance(evaluators, list) else [evaluators])
                  if isinstance(e, dict) and e.get('ann_file')}
    files = {}  # ann_file -> (needs ground-truth instances, num_keypoints)
    for ds in _datasets((cfg.get('test_dataloader') or {}).get('dataset') or {}):
        ann, root, bbox_file = ds.get('ann_file'), ds.get('data_root'), ds.get('bbox_file')
        if not ann:
            continue
        ann = ann if is_abs(ann) or not root else osp.join(root, ann)
        num_kpts = _num_keypoints(ds)
        # the metric reads the dataset's ann_file when it has none of its own: then that file needs the instances
        files[ann] = (not bbox_file or not eval_files, num_kpts)
        if bbox_file and '://' not in bbox_file:
            raise_first(check_detections(load(bbox_file, 'bbox_file'), bbox_file), 'bbox_file')
    num_kpts = next((k for _, k in files.values()), None)
    files.update({f: (True, num_kpts) for f in eval_files})
    for path, (need, num_kpts) in files.items():
        if '://' not in path:  # remote files: the dataset checks them when it loads them
            ck = check_coco(load(path, 'ann_file'), path, num_keypoints=num_kpts, need_annotations=need,
                            need_instances=need)
            raise_first(ck.problems, 'ann_file')


def main(argv=None) -> int:
    args = parse_args(argv)
    import kpt_plugin  # noqa: F401  (registers our modules; configs also custom_import it)
    from kpt_plugin.errors import KptError
    from mmengine.runner import Runner
    try:
        cfg = build_cfg(args)
        check_data(cfg)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    except (FileNotFoundError, KptError) as e:
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
