"""Device strings: ``cpu``, ``cuda``, ``cuda:N``, ``gpu``, ``gpu:N`` / ``gpu:0,1`` (PaddleX's forms), ``npu``,
``npu:N``. PaddleX's other accelerators (``xpu``, ``mlu``, ``gcu``, ``dcu``) get one line saying what is missing.

:func:`parse_device` turns a user string into a torch device string and fails with one clear line when the
device is not there; ``None`` picks the best available device in mmengine's order (npu, cuda, mlu, mps, cpu).
"""
import importlib
import importlib.util
import os
import re

import torch

from ..errors import DeviceError

__all__ = ['DeviceError', 'parse_device', 'default_device', 'SUPPORTED_DEVICES']

SUPPORTED_DEVICES = 'cpu, cuda, cuda:N, gpu, gpu:N, npu, npu:N'
# PaddleX writes several cards as gpu:0,1 and runs on the first
_DEVICE_RE = re.compile(r'^(cpu|cuda|gpu|npu|mlu|mps|xpu|gcu|dcu)(?::(\d+)(?:,\d+)*)?$')
#: PaddleX device kinds that PyTorch reaches only through a vendor plugin we do not support
_PADDLE_ONLY = {'xpu': 'Kunlunxin XPU', 'gcu': 'Enflame GCU', 'dcu': 'Hygon DCU'}


def _available(kind):
    """Whether PyTorch reaches a ``kind`` device (a vendor plugin is imported only when it is installed)."""
    plugin = {'npu': 'torch_npu', 'mlu': 'torch_mlu'}.get(kind)
    try:
        if plugin is not None:
            if importlib.util.find_spec(plugin) is None:
                return False
            importlib.import_module(plugin)
        backend = torch.backends.mps if kind == 'mps' else getattr(torch, kind, None)
        return bool(backend is not None and backend.is_available())
    except Exception:  # noqa: BLE001 - a broken plugin means the device is not there (as mmengine decides)
        return False


def default_device():
    """The best available device in mmengine's order (``npu`` > ``cuda`` > ``mlu`` > ``mps`` > ``cpu``), without
    importing mmengine (~0.3 s of a fresh process that runs no OpenMMLab code otherwise)."""
    return next((kind for kind in ('npu', 'cuda', 'mlu', 'mps') if _available(kind)), 'cpu')


def _visible_note():
    cvd = os.environ.get('CUDA_VISIBLE_DEVICES')
    return f' (CUDA_VISIBLE_DEVICES={cvd!r})' if cvd is not None else ''


def _check_cuda(spec, index):
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            raise DeviceError(f'{spec} requested but this PyTorch build has no CUDA support '
                              f'(torch {torch.__version__}); install a CUDA build of torch or use --device cpu')
        raise DeviceError(f'{spec} requested but no GPU is visible{_visible_note()}; use --device cpu')
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceError(f'{spec} requested, {count} GPU{"" if count == 1 else "s"} visible{_visible_note()}; '
                          f'use cuda:0{"" if count == 1 else f" .. cuda:{count - 1}"}')


def _check_npu(spec, index):
    try:
        import torch_npu  # noqa: F401 - registers torch.npu
    except ImportError:
        raise DeviceError(f'{spec} requested but torch_npu is not installed; install Ascend torch_npu or use '
                          '--device cpu') from None
    if not torch.npu.is_available():
        raise DeviceError(f'{spec} requested but no Ascend NPU is visible; use --device cpu')
    count = torch.npu.device_count()
    if index is not None and index >= count:
        raise DeviceError(f'{spec} requested, {count} NPU{"" if count == 1 else "s"} visible')


def _check_other(kind, spec):
    from mmengine.device import is_mlu_available, is_mps_available
    if kind == 'mlu' and not is_mlu_available():
        raise DeviceError(f'{spec} requested but no Cambricon MLU (torch_mlu) is available; use --device cpu')
    if kind == 'mps' and not is_mps_available():
        raise DeviceError(f'{spec} requested but Apple MPS is not available; use --device cpu')


def parse_device(device=None):
    """Validate a device string and return the torch device string.

    Args:
        device (str | torch.device | None): ``cpu``, ``cuda``, ``cuda:N``, ``gpu``, ``gpu:N``, ``npu``,
            ``npu:N`` (case-insensitive); ``None`` or ``''`` = :func:`default_device`.

    Returns:
        str: e.g. ``'cpu'``, ``'cuda:0'``, ``'npu:1'`` (``gpu`` is mapped to ``cuda``).

    Raises:
        DeviceError: unknown syntax, or the device is not installed / not visible.
    """
    if device is None or (isinstance(device, str) and not device.strip()):
        return default_device()
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise DeviceError(f'device must be a string such as {SUPPORTED_DEVICES}; got {type(device).__name__} '
                          f'{device!r}')
    spec = device.strip().lower()
    m = _DEVICE_RE.match(spec)
    if m is None:
        raise DeviceError(f'unknown device {device!r}; use one of {SUPPORTED_DEVICES}')
    kind, index = m.group(1), m.group(2)
    index = int(index) if index is not None else None
    if kind == 'gpu':
        kind = 'cuda'
    if kind == 'dcu':
        # Hygon DCUs run ROCm builds of torch, which expose them as cuda devices
        if torch.version.hip is None:
            raise DeviceError(f'{device!r}: a Hygon DCU needs a ROCm (HIP) build of PyTorch; this is torch '
                              f'{torch.__version__}; install one, or use --device cpu')
        kind = 'cuda'
    elif kind in _PADDLE_ONLY:
        raise DeviceError(f'{device!r}: {_PADDLE_ONLY[kind]} is a PaddlePaddle device; kpt_plugin runs on cpu, '
                          'cuda (gpu) and npu (Ascend, torch_npu); use one of those')
    if kind == 'cpu':
        if index not in (None, 0):
            raise DeviceError(f'{device!r}: there is only one CPU device; use cpu')
        return 'cpu'
    if kind == 'cuda':
        _check_cuda(spec, index)
    elif kind == 'npu':
        _check_npu(spec, index)
    else:
        _check_other(kind, spec)
    return kind if index is None else f'{kind}:{index}'
