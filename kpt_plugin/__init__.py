"""kpt_plugin: PP-TinyPose (PaddleDetection / PaddleX) for MMPose 1.x.

``import kpt_plugin`` (or ``custom_imports=dict(imports=['kpt_plugin'])`` in a config) applies the compat layer and
registers our modules into MMPose's registries; nothing else. The inference API is reached lazily.
"""
from .version import __version__  # noqa: F401
from . import _compat

_compat.apply_all()

from . import codecs, datasets, evaluation, models, training  # noqa: E402,F401  (registers modules into mmpose's registries)

#: public name -> module that defines it, imported on first use (keeps `import kpt_plugin` to registration only)
_LAZY = {
    'create_model': 'kpt_plugin.inference.predictor',
    'KeypointPredictor': 'kpt_plugin.inference.predictor',
    'KptResult': 'kpt_plugin.inference.result',
    'create_pipeline': 'kpt_plugin.inference.pipeline',
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
