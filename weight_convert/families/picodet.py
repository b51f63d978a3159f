"""PP-PicoDet-S LCNet pedestrian: ppdet's ``PicoDet`` state dict <-> our mmdet ``PicoDet`` (numpy only).

The family interface of :mod:`weight_convert.families` (``to_mmpose*`` / ``from_mmpose*``; "mmpose" there means
"our model", here the mmdet detector of ``kpt_plugin.models.detection``). Our modules mirror ppdet's tree, so a
name changes only where the mmdet detector differs: the head is ``bbox_head`` (ppdet ``head``) and BatchNorm
statistics are ``running_mean`` / ``running_var`` (ppdet ``_mean`` / ``_variance``). Two kinds of ppdet entries
have no counterpart and map to None:

* aliases: ppdet's ``PicoHeadV2`` registers each predictor twice (``head.head_cls0`` is ``head.head_cls_list.0``,
  ``head.head_reg0`` is ``head.head_reg_list.0``); the copies must be equal and are dropped;
* ``head.p{3,4,5,6}_feat.scale_reg``: ``GFLHead``'s per-level scales, created but never called by PicoHeadV2.

An export may name a predictor by its alias only (``.pdiparams.info`` keeps one structured name per tensor): the
alias then stands for the tensor. Going back to ppdet restores both (aliases copied, scales 1.0) so ppdet's
``set_state_dict`` finds every key. :func:`export_constants` are what ``tools/export_model.py`` bakes into a program
(anchors, strides, DFL projection); readers check and drop them.
"""
import collections
import math
import re

import numpy as np

from .. import archs
from ..pdparams import read_pdparams

__all__ = ['PICODET_ARCHS', 'KEY_PREFIXES', 'DEPLOY_ARCHS', 'FPN_STRIDES', 'REG_MAX', 'CELL_OFFSET', 'DATASET_META',
           'to_mmpose_name', 'from_mmpose_name', 'to_mmpose', 'from_mmpose', 'export_constants',
           'load_folded_pdparams']

#: the released sizes as ``{arch: {family, input_size, config}}``: a view of :data:`weight_convert.archs.ARCHS`,
#: which holds the facts (kept for callers of the first release)
PICODET_ARCHS = {a.name: dict(family=a.family, input_size=a.input_size, config=a.config)
                 for a in archs.ARCHS.values() if a.family == 'picodet'}
#: names only PicoDet state dicts have (ppdet's and ours)
KEY_PREFIXES = ('backbone.conv1.', 'backbone.blocks', 'neck.conv_t.', 'head.conv_feat.', 'bbox_head.')
#: ``infer_cfg.yml`` ``arch`` of a PicoDet export: ppdet writes 'GFL' when the NMS is in the graph
DEPLOY_ARCHS = ('PicoDet', 'GFL')
#: PicoHeadV2 of the pedestrian configs: level strides, DFL bins - 1, anchor point inside each cell
FPN_STRIDES, REG_MAX, CELL_OFFSET = (8, 16, 32, 64), 7, 0.5
#: what a converted checkpoint tells mmdet's ``init_detector`` (palette: the config's COCO person colour)
DATASET_META = dict(classes=('person', ), palette=[(220, 20, 60)])

_PREFIXES = (('head.', 'bbox_head.'), )
_BN = (('._mean', '.running_mean'), ('._variance', '.running_var'))
_ALIAS_RE = re.compile(r'^head\.head_(cls|reg)(\d+)\.(weight|bias)$')
_CANONICAL_RE = re.compile(r'^head\.head_(cls|reg)_list\.(\d+)\.(weight|bias)$')
_SCALE_RE = re.compile(r'^head\.p\d+_feat\.scale_reg$')


def to_mmpose_name(name):
    """One ppdet name -> our state-dict name, or None for a ppdet alias / unused entry."""
    if _ALIAS_RE.match(name) or _SCALE_RE.match(name):
        return None
    for src, dst in _PREFIXES:
        if name.startswith(src):
            name = dst + name[len(src):]
    for src, dst in _BN:
        if name.endswith(src):
            name = name[:-len(src)] + dst
    return name


def from_mmpose_name(name):
    """Inverse of :func:`to_mmpose_name` (BN counters ``num_batches_tracked`` -> None)."""
    if name.endswith('num_batches_tracked'):
        return None
    for dst, src in _BN:
        if name.endswith(src):
            name = name[:-len(src)] + dst
    for dst, src in _PREFIXES:
        if name.startswith(src):
            name = dst + name[len(src):]
    return name


def to_mmpose(state):
    """``{ppdet name: array}`` -> ``{our name: float32 array}`` (order kept, aliases and unused scales dropped; an
    alias without its list name stands for it).

    Raises:
        ValueError: an alias differs from the tensor it aliases (not one ppdet tensor: an edited file?).
    """
    out = collections.OrderedDict()
    for name, value in state.items():
        m = _ALIAS_RE.match(name)
        canonical = m and f'head.head_{m.group(1)}_list.{m.group(2)}.{m.group(3)}'
        if canonical and canonical in state and not np.array_equal(state[canonical], value):
            raise ValueError(f'{name} differs from {canonical}; ppdet registers them as one tensor')
        ours = to_mmpose_name(canonical if canonical and canonical not in state else name)
        if ours is not None:
            out[ours] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def from_mmpose(state):
    """``{our name: array}`` -> ``{ppdet name: float32 array}``, ppdet's aliases and (unused) scales restored.

    Values may be numpy arrays or anything ``np.asarray`` takes (detached CPU tensors).
    """
    out = collections.OrderedDict()
    for name, value in state.items():
        pp = from_mmpose_name(name)
        if pp is None:
            continue
        out[pp] = np.ascontiguousarray(np.asarray(value), dtype=np.float32)
        m = _CANONICAL_RE.match(pp)
        if m:
            out[f'head.head_{m.group(1)}{m.group(2)}.{m.group(3)}'] = out[pp]
    levels = sorted({int(m.group(2)) for m in map(_CANONICAL_RE.match, list(out)) if m})
    for i in levels:  # GFLHead names its scales after the FPN level: p3 is level 0
        out[f'head.p{i + 3}_feat.scale_reg'] = np.ones(1, np.float32)
    return out


def export_constants(input_size):
    """What ppdet's export of PicoHeadV2 (``eval_size`` set) bakes into the program for a ``(w, h)`` input.

    Returns:
        dict: ``anchor_points`` (N, 2) cell centres in stride units, levels row-major; ``stride_tensor`` (N, 1);
        ``distribution_project`` (reg_max + 1,) the DFL bins ``0..reg_max``.
    """
    w, h = input_size
    points, strides = [], []
    for s in FPN_STRIDES:
        gw, gh = math.ceil(w / s), math.ceil(h / s)
        yy, xx = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing='ij')
        points.append(np.stack([xx, yy], -1).reshape(-1, 2) + np.float32(CELL_OFFSET))
        strides.append(np.full((gw * gh, 1), s, np.float32))
    return dict(anchor_points=np.concatenate(points), stride_tensor=np.concatenate(strides),
                distribution_project=np.arange(REG_MAX + 1, dtype=np.float32))


def load_folded_pdparams(path):
    """A ppdet PicoDet ``.pdparams`` (e.g. the fixtures' BN-folded ones) -> ``{our name: float32 array}``.

    Folded files carry each BN as identity + bias (``weight=1, mean=0, var=1-eps``): loaded into real BatchNorm
    modules in eval mode they are exact (``BN(x) == x + bias`` in float32).
    """
    return to_mmpose(read_pdparams(path))
