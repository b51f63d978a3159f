"""Restricted unpickling: foreign pickles (``.pdparams``, ``.pth``, ``.pdiparams.info``) are never
loaded with a plain ``pickle.load``.

Only an explicit allow-list of globals may be resolved; anything else (``os.system``, ``eval``,
``subprocess.Popen``, ...) raises :class:`UnsafePickleError` *before* it could be called.
"""
import builtins
import io
import pickle

__all__ = ['UnsafePickleError', 'RestrictedUnpickler', 'safe_loads', 'safe_load', 'TorchCheckpointPickle']


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that is not on the allow-list."""


# numpy moved its internals from ``numpy.core`` to ``numpy._core`` in 2.0; pickles carry either.
_NUMPY_GLOBALS = {
    (m, n)
    for m in ('numpy.core.multiarray', 'numpy._core.multiarray')
    for n in ('_reconstruct', 'scalar')
} | {('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode')}

_BUILTIN_TYPES = {'set', 'frozenset', 'slice', 'complex', 'int', 'float', 'bool', 'str', 'bytes', 'bytearray',
                  'list', 'dict', 'tuple', 'object'}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals.

    Args:
        file: binary file object.
        extra_allowed (set[tuple[str, str]]): ``(module, name)`` pairs allowed besides numpy's array
            reconstruction and plain builtin containers.
        source (str): name of the input, used in error messages.
    """

    extra_allowed = frozenset()

    def __init__(self, file, *args, extra_allowed=(), source='<pickle>', **kwargs):
        super().__init__(file, *args, **kwargs)
        self._allowed = _NUMPY_GLOBALS | set(self.extra_allowed) | set(extra_allowed)
        self._source = source

    def find_class(self, module, name):
        if module in ('builtins', '__builtin__'):
            if name in _BUILTIN_TYPES:
                return getattr(builtins, name)
            if name == 'getattr':
                return self._safe_getattr
        if module == 'numpy.dtypes' and name.endswith('DType'):
            return super().find_class(module, name)
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f'{self._source}: refused to unpickle global {module}.{name!r} (not on the allow-list); '
            'the file is not a plain weights file or has been tampered with. Re-export it from a trusted source.')

    def _safe_getattr(self, obj, name):
        # mmengine's HistoryBuffer pickles bound statistics as getattr(HistoryBuffer, 'mean'); allow that
        # shape only: public attributes of already allow-listed classes (no __globals__ escapes).
        allowed_objs = {id(self.find_class(m, n)) for m, n in self._allowed if not m.startswith('_codecs')}
        if name.startswith('_') or id(obj) not in allowed_objs:
            raise UnsafePickleError(f'{self._source}: refused getattr({type(obj).__name__}, {name!r}) in pickle')
        return getattr(obj, name)


def safe_loads(data, source='<bytes>', extra_allowed=()):
    """Unpickle ``data`` (bytes) with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), extra_allowed=extra_allowed, source=source,
                               encoding='latin1').load()


def safe_load(path, extra_allowed=()):
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`."""
    with open(path, 'rb') as f:
        return RestrictedUnpickler(f, extra_allowed=extra_allowed, source=str(path), encoding='latin1').load()


class _TorchCheckpointUnpickler(RestrictedUnpickler):
    # what torch.save / mmengine's CheckpointHook put into a checkpoint (tensors, optimizer and
    # scheduler state, message hub); torch itself maps "*Storage" names before reaching find_class.
    extra_allowed = frozenset({
        ('torch._utils', '_rebuild_tensor_v2'), ('torch._utils', '_rebuild_parameter'),
        ('torch._utils', '_rebuild_parameter_with_state'), ('torch._tensor', '_rebuild_from_type_v2'),
        ('torch', 'Size'), ('torch', 'Tensor'), ('torch.nn.parameter', 'Parameter'), ('torch', 'device'),
        ('torch', 'float32'), ('torch', 'float16'), ('torch', 'bfloat16'), ('torch', 'float64'),
        ('torch', 'int64'), ('torch', 'int32'), ('torch', 'uint8'), ('torch', 'bool'),
        ('collections', 'OrderedDict'), ('collections', 'defaultdict'), ('collections', 'Counter'),
        ('mmengine.logging.history_buffer', 'HistoryBuffer'),
        ('mmengine.config.config', 'ConfigDict'),
    })


class TorchCheckpointPickle:
    """A ``pickle_module`` for ``torch.load(..., weights_only=False, pickle_module=...)`` that only
    accepts what torch and mmengine themselves write into a checkpoint.

    Args:
        source (str): name of the file, for error messages.
    """

    UnpicklingError = pickle.UnpicklingError

    def __init__(self, source='<checkpoint>'):
        base = _TorchCheckpointUnpickler

        class Unpickler(base):

            def __init__(self, file, *args, **kwargs):
                kwargs.setdefault('source', source)
                super().__init__(file, *args, **kwargs)

        self.Unpickler = Unpickler
        self.__name__ = __name__  # torch.load inspects pickle_module.__name__

    def load(self, file, **kwargs):
        return self.Unpickler(file, **kwargs).load()
