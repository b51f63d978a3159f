"""``paddle.save`` state dicts (``.pdparams``): read without paddle and without plain ``pickle.load``, and write
files that PaddleDetection loads (``-o weights=...``)."""
import collections
import os.path as osp
import pickle

import numpy as np

from .errors import MissingWeightsError, WeightsError
from .io import atomic_output
from .safe_pickle import UnsafePickleError, safe_load

__all__ = ['STRUCTURED_KEY', 'read_pdparams', 'write_pdparams']

# paddle.save adds this bookkeeping entry (structured name -> framework tensor name)
STRUCTURED_KEY = 'StructuredToParameterName@@'


def read_pdparams(path):
    """Load a ``.pdparams`` file into ``{ppdet_name: float32 ndarray}`` (insertion order kept).

    Only numpy array reconstruction and builtin containers are allowed while unpickling; a file that asks
    for anything else is refused before it can run.

    Raises:
        MissingWeightsError: ``path`` does not exist (a ``FileNotFoundError``).
        WeightsError: the file is not a ``paddle.save`` state dict (truncated, wrong format, unsafe).
    """
    path = str(path)
    if not osp.isfile(path):
        raise MissingWeightsError(f'{path}: no such file')
    try:
        obj = safe_load(path)
    except UnsafePickleError as e:
        raise WeightsError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is not usable
        raise WeightsError(f'{path}: not a readable .pdparams file ({type(e).__name__}: {e}); '
                           'the download may be truncated - fetch it again') from None
    if not isinstance(obj, dict):
        raise WeightsError(f'{path}: expected a paddle state dict, got {type(obj).__name__}')
    state = collections.OrderedDict()
    for name, value in obj.items():
        if name == STRUCTURED_KEY:
            continue
        if not isinstance(value, np.ndarray):
            raise WeightsError(f'{path}: entry {name!r} is a {type(value).__name__}, not an array')
        state[name] = value.astype(np.float32) if value.dtype.kind == 'f' else value
    return state


def _reconstruct():
    return np.zeros(1).__reduce__()[0]


class _NumpyCompatPickler(pickle._Pickler):  # noqa: SLF001 - the pure-Python pickler lets us name globals
    """Pickles numpy arrays naming ``numpy.core.multiarray._reconstruct`` (what numpy 1.x writes), so
    paddle environments on numpy 1.x *and* 2.x can load the file (numpy 2 keeps ``numpy.core`` importable)."""

    def save_global(self, obj, name=None):
        if obj is _reconstruct():
            self.write(pickle.GLOBAL + b'numpy.core.multiarray\n_reconstruct\n')
            self.memoize(obj)
            return
        super().save_global(obj, name)


def write_pdparams(ppdet_state, out, table):
    """Write ``{ppdet name: array}`` as a ``paddle.save``-style ``.pdparams``, atomically.

    Pickle protocol 4, numpy float32 arrays in ppdet's state-dict order, plus the ``StructuredToParameterName@@``
    table, as ``paddle.save`` writes them; ``table`` (a :class:`~weight_convert.tables.SlotTable`) gives both.
    """
    names = table.paddle_framework_names()
    obj = {k: np.ascontiguousarray(ppdet_state[k], dtype=np.float32) for k in table.paddle_order(ppdet_state)}
    obj[STRUCTURED_KEY] = {k: names.get(k, k) for k in ppdet_state}
    with atomic_output(out) as tmp:
        with open(tmp, 'wb') as f:
            _NumpyCompatPickler(f, protocol=4).dump(obj)
    return osp.abspath(out)
