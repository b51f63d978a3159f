"""Runtimes behind one interface: ``backend(batch) -> heatmaps`` for a normalised (N, 3, H, W) float32 batch.

One small adapter per runtime (:mod:`.torch`, :mod:`.onnxruntime`, :mod:`.openvino`); :func:`auto_backend` is the
``use_hpip`` choice per device.
"""
import importlib.util

from ...errors import BackendError

__all__ = ['BACKENDS', 'backend_class', 'auto_backend']

BACKENDS = ('torch', 'onnxruntime', 'openvino')


def backend_class(name):
    """The adapter class of a backend name (imported on demand: each runtime is an optional package)."""
    if name == 'torch':
        from .torch import TorchBackend
        return TorchBackend
    if name == 'onnxruntime':
        from .onnxruntime import OrtBackend
        return OrtBackend
    if name == 'openvino':
        from .openvino import OpenVinoBackend
        return OpenVinoBackend
    raise BackendError(f'unknown backend {name!r}; choose one of {", ".join(BACKENDS)}')


def _importable(name):
    return importlib.util.find_spec(name) is not None


def auto_backend(device):
    """The high-performance backend for a parsed device (PaddleX's hpip picks one per device the same way).

    cpu: OpenVINO when installed (fastest measured here in every cell, see docs/inference.md), else ONNX
    Runtime; cuda: ONNX Runtime (needs onnxruntime-gpu). Raises BackendError when none fits.
    """
    if device == 'cpu':
        for name in ('openvino', 'onnxruntime'):
            if _importable(name):
                return name
        raise BackendError("use_hpip on cpu needs openvino or onnxruntime: pip install openvino (or "
                           "onnxruntime), or use_hpip=False")
    if device.startswith('cuda'):
        if not _importable('onnxruntime'):
            raise BackendError(f'use_hpip on {device} needs onnxruntime-gpu: pip install onnxruntime-gpu, or '
                               'use_hpip=False')
        return 'onnxruntime'
    raise BackendError(f'use_hpip has no high-performance backend for {device}; use use_hpip=False (torch)')
