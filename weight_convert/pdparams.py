"""Read ``paddle.save`` state dicts (``.pdparams``) without paddle and without plain ``pickle.load``."""
import collections
import os.path as osp

import numpy as np

from kpt_plugin.safe_pickle import UnsafePickleError, safe_load

# paddle.save adds this bookkeeping entry (structured name -> framework tensor name)
STRUCTURED_KEY = 'StructuredToParameterName@@'


def read_pdparams(path):
    """Load a ``.pdparams`` file into ``{ppdet_name: float32 ndarray}`` (insertion order kept).

    Only numpy array reconstruction and builtin containers are allowed while unpickling; a file that asks
    for anything else is refused before it can run.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a ``paddle.save`` state dict (truncated, wrong format, unsafe).
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        obj = safe_load(path)
    except UnsafePickleError as e:
        raise ValueError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is not usable
        raise ValueError(f'{path}: not a readable .pdparams file ({type(e).__name__}: {e}); '
                         'the download may be truncated - fetch it again') from None
    if not isinstance(obj, dict):
        raise ValueError(f'{path}: expected a paddle state dict, got {type(obj).__name__}')
    state = collections.OrderedDict()
    for name, value in obj.items():
        if name == STRUCTURED_KEY:
            continue
        if not isinstance(value, np.ndarray):
            raise ValueError(f'{path}: entry {name!r} is a {type(value).__name__}, not an array')
        state[name] = value.astype(np.float32) if value.dtype.kind == 'f' else value
    return state
