"""The io layer every other module uses: atomic writes, sha256, and the one restricted checkpoint loader.

It lives at the bottom (in ``weight_convert``, which needs only numpy/torch) so the converter and kpt_plugin share it
without ``import weight_convert`` pulling in kpt_plugin's MMPose registration.
"""
import contextlib
import hashlib
import json
import os
import os.path as osp
import pickle
import tempfile

__all__ = ['atomic_output', 'atomic_write_bytes', 'atomic_write_text', 'atomic_write_json', 'sha256sum',
           'load_checkpoint']


def _umask():
    # os.umask can only be read by setting it; restore at once (single call pair, no window for other writes here)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; when the block succeeds it replaces ``path``.

    On any error the temporary file is removed and an existing ``path`` is left untouched.
    """
    path = osp.abspath(os.fspath(path))
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.part', dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes 0600 files; outputs get the mode a plain open() would give (0666 minus the umask)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically; returns the absolute path."""
    with atomic_output(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)
    return osp.abspath(os.fspath(path))


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path, obj, indent=2):
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + '\n')


def sha256sum(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(filename, map_location=None):
    """Load a torch/mmengine checkpoint without arbitrary code execution.

    Plain weight files load with ``weights_only=True``; files that also carry mmengine's training state
    (numpy scalars, message hub) go through :class:`~weight_convert.safe_pickle.TorchCheckpointPickle`.
    """
    import torch

    from .safe_pickle import TorchCheckpointPickle
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - fall back to the restricted full loader below
        if 'Weights only load failed' not in str(e) and not isinstance(e, pickle.UnpicklingError):
            raise
    return torch.load(filename, map_location=map_location, weights_only=False,
                      pickle_module=TorchCheckpointPickle(filename))


def strip_module_prefix(state):
    """``state`` with the ``module.`` prefix that (Distributed)DataParallel adds removed from every key."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
