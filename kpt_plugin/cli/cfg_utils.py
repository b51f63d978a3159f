"""Config loading shared by ``tools/train.py`` (and usable by ``tools/test.py``).

Two things plain ``Config.fromfile`` + ``merge_from_dict`` do not do:

* ``--cfg-options data_root=X`` only changes the top-level variable; every value the config file
  derived from it (``dataset.data_root``, ``evaluator.ann_file = data_root + ...``) keeps the old
  path. :func:`load_config` substitutes such top-level variables *before* the file is evaluated.
* The head's channel count must follow the dataset's keypoint set: :func:`sync_num_keypoints` reads
  the training (or test) dataset's metainfo and sets ``model.head.out_channels`` from it.
"""
import ast
import os
import os.path as osp
import tempfile
from typing import Optional

from mmengine.config import Config

__all__ = ['load_config', 'sync_num_keypoints', 'dataset_num_keypoints']


def _top_level_names(source: str):
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _substitute(source: str, values: dict) -> str:
    """Replace the right-hand side of top-level ``name = ...`` for each name in ``values``."""
    lines = source.splitlines(keepends=True)
    edits = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in values:
            edits.append((node.value.lineno, node.value.col_offset, node.value.end_lineno,
                          node.value.end_col_offset, repr(values[node.targets[0].id])))
    for l0, c0, l1, c1, text in sorted(edits, reverse=True):
        head = lines[l0 - 1][:c0]
        tail = lines[l1 - 1][c1:]
        lines[l0 - 1:l1] = [head + text + tail]
    return ''.join(lines)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load ``path`` applying ``cfg_options``; top-level variables of the file itself are substituted
    before evaluation so derived values follow (``data_root``, ``train_ann_file``, ...).

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` as parsed by mmengine's ``DictAction``.

    Returns:
        mmengine.Config
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} not found')
    cfg_options = dict(cfg_options or {})
    with open(path, encoding='utf-8') as f:
        source = f.read()
    variables = {k: v for k, v in cfg_options.items() if '.' not in k and k in _top_level_names(source)}
    if not variables:
        cfg = Config.fromfile(path)
    else:
        # Evaluate a substituted copy beside the original so relative `_base_` paths still resolve;
        # fall back to a temp dir with absolute `_base_` paths when that folder is read-only.
        src = _substitute(source, variables)
        folder = osp.dirname(osp.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(suffix='.py', prefix='.kpt_cfg_', dir=folder)
        except OSError:
            src = _absolute_bases(src, folder)
            fd, tmp = tempfile.mkstemp(suffix='.py', prefix='kpt_cfg_')
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                f.write(src)
            cfg = Config.fromfile(tmp)
        finally:
            os.remove(tmp)
        object.__setattr__(cfg, '_filename', osp.abspath(path))  # the run is named after the user's file
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _absolute_bases(source: str, folder: str) -> str:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_'
                                                for t in node.targets):
            value = ast.literal_eval(node.value)
            value = [value] if isinstance(value, str) else list(value)
            fixed = [v if (osp.isabs(v) or '::' in v) else osp.normpath(osp.join(folder, v)) for v in value]
            return _substitute(source, {'_base_': fixed})
    return source


def dataset_num_keypoints(dataset_cfg) -> Optional[int]:
    """Number of keypoints in a dataset config's metainfo (``metainfo=dict(from_file=...)`` or the
    dataset class's default), or None when it cannot be told without building the dataset."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.registry import DATASETS
    if dataset_cfg is None:
        return None
    if dataset_cfg.get('type') in ('CombinedDataset', 'ConcatDataset', 'RepeatDataset'):
        meta = dataset_cfg.get('metainfo')
        if meta is None:
            inner = dataset_cfg.get('datasets') or [dataset_cfg.get('dataset')]
            return dataset_num_keypoints(inner[0]) if inner and inner[0] is not None else None
    else:
        meta = dataset_cfg.get('metainfo')
        if meta is None:
            cls = DATASETS.get(dataset_cfg.get('type'))
            meta = getattr(cls, 'METAINFO', None)
            if meta is None:
                return None
    meta = parse_pose_metainfo(dict(meta))
    return int(meta['num_keypoints'])


def sync_num_keypoints(cfg: Config, log=None, split: str = 'train_dataloader') -> Optional[int]:
    """Set ``cfg.model.head.out_channels`` to the keypoint count of ``cfg[split].dataset``'s metainfo.

    Args:
        cfg (Config): Modified in place.
        log (callable, optional): Called with a message when the head is changed.
        split (str): The dataloader whose dataset defines the keypoint set.

    Returns:
        int | None: The keypoint count used, or None when the config has no such dataset/head.
    """
    loader = cfg.get(split)
    head = cfg.get('model', {}).get('head')
    if not loader or head is None or 'out_channels' not in head:
        return None
    num = dataset_num_keypoints(loader.get('dataset'))
    if num is not None and head.out_channels != num:
        if log is not None:
            log(f'model.head.out_channels: {head.out_channels} -> {num} (keypoints in the dataset '
                        'metainfo); a loaded checkpoint with another count keeps its backbone only')
        head.out_channels = num
    return num
