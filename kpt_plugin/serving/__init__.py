"""PaddleX-compatible HTTP serving of the ``human_keypoint_detection`` pipeline (``kpt-plugin serve``).

``create_app(pipeline)`` (:mod:`.app`) builds the FastAPI app around any pipeline object; :mod:`.batcher` micro-batches
concurrent requests; :mod:`.schemas` holds PaddleX's request / response models. Needs ``requirements/serving.txt``
(fastapi, uvicorn); the names below load on first use, so ``import kpt_plugin.serving`` needs neither.
"""
_LAZY = {
    'create_app': 'kpt_plugin.serving.app',
    'create_app_from_env': 'kpt_plugin.serving.app',
    'MicroBatcher': 'kpt_plugin.serving.batcher',
    'QueueFull': 'kpt_plugin.serving.batcher',
    'INFER_ENDPOINT': 'kpt_plugin.serving.schemas',
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
