"""kpt_plugin: PP-TinyPose (PaddleDetection / PaddleX) for MMPose 1.x.

``import kpt_plugin`` (or ``custom_imports=dict(imports=['kpt_plugin'])`` in a config) applies the compat layer and
makes our modules part of MMPose's and mmdet's registries: at once in a process that has imported OpenMMLab
already (configs' ``custom_imports``, MMPose's tools and demos, ``tools/train.py``), else on the first look-up in a
registry (``MODELS.build(...)``, ``MODELS.get(...)``): each of those registries imports :mod:`kpt_plugin.registration`
with its own modules. So ``import kpt_plugin`` alone imports no MMPose, and the inference API it reaches lazily
(``create_model``) runs without it for the released models (~3 s less in a fresh process); ``import
kpt_plugin.registration`` registers everything now (for code that reads a registry's ``module_dict`` directly).
"""
import importlib
import sys

from .version import __version__  # noqa: F401
from . import _compat

_compat.apply_all()

#: the module whose import registers every module of ours
REGISTRATION = 'kpt_plugin.registration'
#: the registries our modules join, by the module that defines them
_REGISTRIES = {'mmpose.registry': ('MODELS', 'KEYPOINT_CODECS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS'),
               'mmdet.registry': ('MODELS', )}


def _join_registries(module):
    """Add :data:`REGISTRATION` to the import locations of ``module``'s registries (imported on first look-up)."""
    for name in _REGISTRIES[module.__name__]:
        registry = getattr(module, name)
        if registry._imported:  # its locations were imported already: register now
            importlib.import_module(REGISTRATION)
        elif REGISTRATION not in registry._locations:
            registry._locations.append(REGISTRATION)


if any(name in sys.modules for name in ('mmengine', 'mmpose', 'mmdet')):
    importlib.import_module(REGISTRATION)
else:
    for _name in _REGISTRIES:
        _compat.after_import(_name, _join_registries)

#: public name -> module that defines it, imported on first use (keeps `import kpt_plugin` light)
_LAZY = {
    'create_model': 'kpt_plugin.inference.predictor',
    'KeypointPredictor': 'kpt_plugin.inference.predictor',
    'KptResult': 'kpt_plugin.inference.result',
    'create_pipeline': 'kpt_plugin.inference.pipeline',
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
