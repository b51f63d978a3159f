"""kpt_plugin: PP-TinyPose (PaddleDetection) for MMPose 1.x."""
from .version import __version__  # noqa: F401
from . import compat

compat.apply_all()

from . import codecs, datasets, evaluation, models  # noqa: E402,F401  (registers modules into mmpose's registries)
from .apis import create_model  # noqa: E402,F401  (PaddleX-style entry point)
