"""PaddleX's ``create_model`` options, mapped to ours (``hpi_config``; ``use_hpip`` lives in :func:`create_model`)."""

from ..errors import OptionError

__all__ = ['parse_hpi_config']


#: PaddleX ``hpi_config`` backends that kpt_plugin does not have
_PADDLEX_ONLY_BACKENDS = ('paddle', 'tensorrt', 'om', 'paddle_infer')


def parse_hpi_config(hpi_config):
    """PaddleX's ``hpi_config`` -> (backend or 'auto', cpu threads or None)."""
    if hpi_config is None:
        return 'auto', None
    if not isinstance(hpi_config, dict):
        raise TypeError(f'hpi_config must be a dict, got {type(hpi_config).__name__}')
    unknown = set(hpi_config) - {'backend', 'backend_config'}
    if unknown:
        raise OptionError(f'hpi_config: unsupported keys {", ".join(sorted(unknown))}; kpt_plugin reads '
                         '"backend" and "backend_config" ({"cpu_num_threads": N})')
    backend = hpi_config.get('backend') or 'auto'
    if backend in _PADDLEX_ONLY_BACKENDS:
        raise OptionError(f'hpi_config backend {backend!r} is a Paddle runtime; kpt_plugin runs openvino or '
                         'onnxruntime (or leave "backend" out to pick automatically)')
    if backend not in ('auto', 'openvino', 'onnxruntime'):
        raise OptionError(f'hpi_config: unknown backend {backend!r}; choose openvino or onnxruntime')
    cfg = hpi_config.get('backend_config') or {}
    if not isinstance(cfg, dict) or set(cfg) - {'cpu_num_threads'}:
        raise OptionError(f'hpi_config backend_config: only {{"cpu_num_threads": N}} is supported, got {cfg!r}')
    threads = cfg.get('cpu_num_threads')
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise OptionError(f'hpi_config backend_config cpu_num_threads must be a positive integer, got {threads!r}')
    return backend, threads
