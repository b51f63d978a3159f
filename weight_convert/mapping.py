"""Name mapping between PaddleDetection's TopDownHRNet state dict and our MMPose TopdownPoseEstimator.

ppdet and MMPose's LiteHRNet share the module tree; only BatchNorm naming differs, and the final 1x1
conv is ``head.final_layer`` in MMPose's ``HeatmapHead``.
"""
import collections
import re

import numpy as np
import torch

_HEAD = (('final_conv.', 'head.final_layer.'), )
_BN = (('._mean', '.running_mean'), ('._variance', '.running_var'))


def ppdet_name_to_mmpose(name):
    """Map one ppdet parameter name to its MMPose name."""
    for src, dst in _HEAD:
        if name.startswith(src):
            return dst + name[len(src):]
    name = name.replace('.norm.', '.bn.')
    for src, dst in _BN:
        if name.endswith(src):
            name = name[:-len(src)] + dst
    return name


def mmpose_name_to_ppdet(name):
    """Inverse of :func:`ppdet_name_to_mmpose`."""
    for dst, src in _HEAD:
        if name.startswith(src):
            return dst + name[len(src):]
    for dst, src in _BN:
        if name.endswith(src):
            name = name[:-len(src)] + dst
    return re.sub(r'\.bn\.', '.norm.', name)


def ppdet_to_mmpose(state):
    """``{ppdet_name: ndarray}`` -> ``{mmpose_name: torch.Tensor}`` (float32)."""
    out = collections.OrderedDict()
    for name, value in state.items():
        out[ppdet_name_to_mmpose(name)] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return out


def mmpose_to_ppdet(state):
    """``{mmpose_name: Tensor}`` -> ``{ppdet_name: float32 ndarray}``; BN counters are dropped."""
    out = collections.OrderedDict()
    for name, value in state.items():
        if name.endswith('num_batches_tracked'):
            continue
        out[mmpose_name_to_ppdet(name)] = value.detach().cpu().numpy().astype(np.float32)
    return out
