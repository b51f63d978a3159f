"""PP-TinyPose: PaddleDetection's ``TopDownHRNet`` state dict <-> our MMPose ``TopdownPoseEstimator``.

ppdet and our LiteHRNet share the module tree; only BatchNorm naming differs (``norm`` / ``_mean`` /
``_variance`` vs ``bn`` / ``running_mean`` / ``running_var``), and the final 1x1 conv is ``head.final_layer``
in MMPose's ``HeatmapHead``. The mapping is one-to-one, so each direction is the exact inverse of the other.
"""
import collections
import re

import numpy as np

__all__ = ['KEY_PREFIXES', 'DEPLOY_ARCHS', 'to_mmpose_name', 'from_mmpose_name', 'to_mmpose', 'from_mmpose']

#: names only PP-TinyPose state dicts have (ppdet's and ours)
KEY_PREFIXES = ('backbone.stem.', 'backbone.stage', 'backbone.transition', 'final_conv.', 'head.final_layer.')
#: ``infer_cfg.yml`` ``arch`` of a PP-TinyPose export
DEPLOY_ARCHS = ('HRNet', 'TopDownHRNet')

_HEAD = (('final_conv.', 'head.final_layer.'), )
_BN = (('._mean', '.running_mean'), ('._variance', '.running_var'))


def to_mmpose_name(name):
    """One ppdet parameter name -> its MMPose name."""
    for src, dst in _HEAD:
        if name.startswith(src):
            return dst + name[len(src):]
    name = name.replace('.norm.', '.bn.')
    for src, dst in _BN:
        if name.endswith(src):
            name = name[:-len(src)] + dst
    return name


def from_mmpose_name(name):
    """Inverse of :func:`to_mmpose_name`."""
    for dst, src in _HEAD:
        if name.startswith(src):
            return dst + name[len(src):]
    for dst, src in _BN:
        if name.endswith(src):
            name = name[:-len(src)] + dst
    return re.sub(r'\.bn\.', '.norm.', name)


def to_mmpose(state):
    """``{ppdet name: array}`` -> ``{MMPose name: float32 array}`` (order kept)."""
    return collections.OrderedDict(
        (to_mmpose_name(k), np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items())


def from_mmpose(state):
    """``{MMPose name: array}`` -> ``{ppdet name: float32 array}``; BN counters (``num_batches_tracked``) dropped."""
    return collections.OrderedDict(
        (from_mmpose_name(k), np.asarray(v, dtype=np.float32)) for k, v in state.items()
        if not k.endswith('num_batches_tracked'))
