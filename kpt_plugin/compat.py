"""The one place where kpt_plugin absorbs known breakages of its upstream stack.

Each fix applies only when the real thing is missing or broken, and is idempotent. Importing
``kpt_plugin`` runs :func:`apply_all`; nobody has to patch site-packages.

1. mmengine 0.10.7 loads checkpoints with a bare ``torch.load``; torch >= 2.6 defaults to
   ``weights_only=True`` which rejects mmengine's own checkpoints (numpy scalars, ``HistoryBuffer``, and
   ``getattr(HistoryBuffer, 'mean')`` in the message hub). Allow-listing cannot express that getattr
   safely, so the local/http loaders are overridden with a restricted unpickler (never a plain one).
2. mmcv-lite has no ``mmcv.ops``; mmpose imports ``mmcv.ops.MultiScaleDeformableAttention`` at module
   level in its ED-Pose head, so ``import mmpose.models`` fails. A placeholder is provided *only while
   that module is imported*; using ED-Pose then raises a clear error.
3. torchvision has no CPU wheel for torch 2.13 (the CUDA-only one breaks ``import torchvision``);
   mmpose imports ``torchvision.transforms.ToPILImage`` at module level in ``simcc_vis`` only. A
   PIL-based ``ToPILImage`` is provided while that module is imported.
"""
import importlib
import os.path as osp
import sys
import types

import torch

from .safe_pickle import TorchCheckpointPickle

_applied = False


# ---------------------------------------------------------------- 1. checkpoints under torch >= 2.6
def load_checkpoint_file(filename, map_location=None):
    """Load a torch/mmengine checkpoint without arbitrary code execution.

    Plain weight files load with ``weights_only=True``; files that also carry mmengine's training state
    (numpy scalars, message hub) go through :class:`~kpt_plugin.safe_pickle.TorchCheckpointPickle`.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - fall back to the restricted full loader below
        if 'Weights only load failed' not in str(e) and not isinstance(e, __import__('pickle').UnpicklingError):
            raise
    return torch.load(filename, map_location=map_location, weights_only=False, pickle_module=TorchCheckpointPickle(filename))


def _needs_checkpoint_fix():
    major_minor = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2])
    return major_minor >= (2, 6)


def _fix_mmengine_checkpoint_loading():
    if not _needs_checkpoint_fix():
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location):
        return load_checkpoint_file(filename, map_location)

    def load_from_http(filename, map_location=None, model_dir=None, progress=True):
        from torch.hub import download_url_to_file, get_dir
        model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
        import os
        os.makedirs(model_dir, exist_ok=True)
        dst = osp.join(model_dir, osp.basename(filename.split('?')[0]))
        if not osp.isfile(dst):
            download_url_to_file(filename, dst, progress=progress)
        return load_checkpoint_file(dst, map_location)

    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)(load_from_http)


# ---------------------------------------------------------------- 2./3. missing optional packages
class _MissingOp(torch.nn.Module):
    """Stands in for an mmcv op that mmcv-lite does not build."""

    op_name = 'op'

    def __init__(self, *args, **kwargs):
        raise ImportError(f'mmcv.ops.{self.op_name} is not available: mmcv-lite is installed without compiled '
                          'ops. Install the full mmcv (MMCV_WITH_OPS=1) to use this model.')


def _import_with_placeholder(target_module, placeholder_name, placeholder):
    """Import ``target_module`` while ``placeholder_name`` resolves to ``placeholder``, then remove it."""
    if target_module in sys.modules:
        return
    saved = {k: sys.modules[k] for k in list(sys.modules) if k == placeholder_name}
    parent, _, child = placeholder_name.rpartition('.')
    parent_mod = sys.modules.get(parent) if parent else None
    sys.modules[placeholder_name] = placeholder
    try:
        importlib.import_module(target_module)
    finally:
        sys.modules.pop(placeholder_name, None)
        sys.modules.update(saved)
        if parent_mod is not None and getattr(parent_mod, child, None) is placeholder:
            delattr(parent_mod, child)


def _module_works(name):
    try:
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable", e.g. mmcv._ext missing
        return False


def _fix_mmcv_ops():
    if _module_works('mmcv.ops'):
        return
    ops = types.ModuleType('mmcv.ops')
    ops.__doc__ = 'kpt_plugin placeholder: mmcv-lite has no compiled ops.'
    for name in ('MultiScaleDeformableAttention', 'DeformConv2d', 'ModulatedDeformConv2d'):
        setattr(ops, name, type(name, (_MissingOp,), {'op_name': name}))
    # edpose_head pulls deformable_detr_layers; both import mmcv.ops at module level.
    _import_with_placeholder('mmpose.models.heads.transformer_heads', 'mmcv.ops', ops)


class _ToPILImage:
    """``torchvision.transforms.ToPILImage`` for the CHW float / HWC uint8 inputs mmpose passes."""

    def __call__(self, pic):
        import numpy as np
        from PIL import Image
        if isinstance(pic, torch.Tensor):
            arr = pic.detach().cpu()
            if arr.ndim == 3:
                arr = arr.permute(1, 2, 0)
            arr = arr.numpy()
            if arr.dtype.kind == 'f':
                arr = (arr * 255).clip(0, 255).astype(np.uint8)
        else:
            arr = np.asarray(pic)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        return Image.fromarray(arr)


def _fix_torchvision():
    if _module_works('torchvision'):
        return
    tv = types.ModuleType('torchvision')
    tv.transforms = types.ModuleType('torchvision.transforms')
    tv.transforms.ToPILImage = _ToPILImage
    saved = sys.modules.get('torchvision.transforms')
    sys.modules['torchvision.transforms'] = tv.transforms
    try:
        _import_with_placeholder('mmpose.visualization', 'torchvision', tv)
    finally:
        sys.modules.pop('torchvision.transforms', None)
        if saved is not None:
            sys.modules['torchvision.transforms'] = saved


def apply_all():
    """Apply every fix once (called on ``import kpt_plugin``)."""
    global _applied
    if _applied:
        return
    _fix_mmengine_checkpoint_loading()
    _fix_mmcv_ops()
    _fix_torchvision()
    _applied = True
