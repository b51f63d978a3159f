"""The model zoo: :mod:`.registry` (the table of released models, pure data) and :mod:`.hub` (download, verify,
convert, cache)."""
from ..errors import ZooError
from .hub import cache_dir, checkpoint_arch, download, resolve_checkpoint
from .registry import (ARCHS, METAFILE, MODELS, ModelInfo, get_config_path, get_model_info, list_models,
                       render_metafile, task_of)

__all__ = ['ZooError', 'ModelInfo', 'MODELS', 'ARCHS', 'list_models', 'get_model_info', 'get_config_path', 'cache_dir',
           'download', 'resolve_checkpoint', 'checkpoint_arch', 'render_metafile', 'METAFILE', 'task_of']
