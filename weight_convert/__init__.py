"""Readers for PP-TinyPose / PicoDet-pedestrian weight formats and the converter to MMPose / mmdet checkpoints.

Numpy-only readers, one module per format (:mod:`.pdparams`, :mod:`.paddle_inference`, :mod:`.openvino_ir`,
:mod:`.ncnn`, :mod:`.pth`), the format registry (:mod:`.formats`: ``detect``, ``read_any``), the architecture
table (:mod:`.archs`), static slot tables (:mod:`.tables`), name mapping per family (:mod:`.families`), the
converter (:mod:`.convert`) and its CLI (:mod:`.cli`). Nothing here imports MMPose, mmdet or kpt_plugin.

``import weight_convert`` loads nothing else: the names below are imported on first use.
"""
import importlib

_EXPORTS = {
    'convert': ('.convert', None),  # the module, callable as convert(src, out, arch=None, model=None)
    'export_pdparams': ('.convert', 'export_pdparams'),
    'CONVERTER_VERSION': ('.convert', 'CONVERTER_VERSION'),
    'read_any': ('.formats', 'read_any'),
    'detect': ('.formats', 'detect'),
    'read_pdparams': ('.pdparams', 'read_pdparams'),
    'get_arch': ('.archs', 'get_arch'),
    'ARCHS': ('.archs', 'ARCHS'),
    'KptError': ('.errors', 'KptError'),
    'WeightsError': ('.errors', 'WeightsError'),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module, attr = _EXPORTS[name]
    mod = importlib.import_module(module, __name__)
    return mod if attr is None else getattr(mod, attr)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
