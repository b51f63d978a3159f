"""The io layer every other module uses: atomic writes, sha256, and the one restricted checkpoint loader.

It lives at the bottom (in ``weight_convert``, which needs only numpy/torch) so the converter and kpt_plugin share it
without ``import weight_convert`` pulling in kpt_plugin's MMPose registration.
"""
import contextlib
import hashlib
import json
import os
import os.path as osp
import re
import secrets
import time

from .errors import KptError

__all__ = ['atomic_output', 'atomic_write_bytes', 'atomic_write_text', 'atomic_write_json', 'sha256sum',
           'load_checkpoint', 'check_writable_dir', 'clean_stale_parts', 'strict_json']

#: ``.NAME.PID.RANDOM.part``: the temp file of :func:`atomic_output` (hidden, beside its target)
_PART = re.compile(r'^\..+\.(\d+)\.[0-9a-f]{8}\.part$')
#: a temp file whose writer died is removed once it is this old (another host on a shared folder may still write)
STALE_PART_S = 600
_swept = set()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_parts(folder, max_age_s=STALE_PART_S):
    """Remove the temp files that killed writers left in ``folder`` (``.NAME.PID.RANDOM.part`` of a dead PID,
    older than ``max_age_s``; a day-old one whatever its PID, which may have been reused). Returns their paths."""
    removed = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith('.') and n.endswith('.part')]
    except OSError:
        return removed
    now = time.time()
    for n in names:
        m = _PART.match(n)
        path = osp.join(folder, n)
        try:
            age = now - os.lstat(path).st_mtime
            if m and age > max_age_s and (not _alive(int(m.group(1))) or age > 86400):
                os.remove(path)
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def check_writable_dir(folder, what):
    """Raise a one-line :class:`KptError` when ``folder`` cannot take files (created when missing).

    ``what`` names the option in the message (``'--save-dir'``, ``'-o out.pth: the folder'``); called before the
    heavy work, so a bad output place fails in a second, not after all of it.
    """
    folder = os.fspath(folder) or '.'
    if osp.exists(folder) and not osp.isdir(folder):
        raise KptError(f'{what} {folder}: is a file, not a folder; choose a folder (or remove the file)')
    try:
        os.makedirs(folder, exist_ok=True)
        probe = osp.join(folder, f'.kpt-plugin-probe.{os.getpid()}.{secrets.token_hex(4)}.part')
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.remove(probe)
    except OSError as e:
        raise KptError(f'{what} {folder}: cannot write there ({e.strerror or e}); choose a writable folder with '
                       'free space') from None


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; when the block succeeds it replaces ``path``.

    On any error the temporary file is removed and an existing ``path`` is left untouched. The temp file is
    created with mode 0666 minus the umask (as a plain ``open`` would), so outputs get the user's usual mode; a
    run killed mid-write leaves it behind, and the first write of a later run into that folder removes it
    (:func:`clean_stale_parts`).
    """
    path = osp.abspath(os.fspath(path))
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    if folder not in _swept:
        _swept.add(folder)
        clean_stale_parts(folder)
    # the name must stay short enough for the file system (255 bytes) whatever the target's length
    base = osp.basename(path)[:200]
    tmp = osp.join(folder, f'.{base}.{os.getpid()}.{secrets.token_hex(4)}.part')
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if osp.lexists(tmp):
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


def strict_json(obj, indent=2):
    """``obj`` as strict JSON text: NaN/inf raise ``ValueError`` (they are not JSON), and text that UTF-8 cannot
    hold (file names with undecodable bytes, kept by Python as surrogates) is written ``\\u``-escaped."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent, ensure_ascii=True, allow_nan=False)
    return text


def atomic_write_json(path, obj, indent=2):
    """Write ``obj`` as strict JSON (:func:`strict_json`) to ``path`` atomically."""
    try:
        text = strict_json(obj, indent)
    except ValueError as e:
        raise ValueError(f'{path}: {e} (a NaN or infinity in the data to write); nothing was written') from None
    return atomic_write_text(path, text + '\n')


def sha256sum(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(filename, map_location=None):
    """Load a torch/mmengine checkpoint without arbitrary code execution.

    Read with :class:`~weight_convert.safe_pickle.TorchCheckpointPickle` (the C unpickler with an allow-list of
    what torch and mmengine write: plain weights and mmengine's training state alike), 2x faster than torch's
    ``weights_only`` unpickler (pure Python; ~0.1 s of every model build for PP-TinyPose's 1610 tensors). A file
    it refuses is tried once more with ``weights_only=True`` (torch's own allow-list differs in detail) before the
    refusal is raised.
    """
    import torch

    from .safe_pickle import TorchCheckpointPickle, UnsafePickleError
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False,
                          pickle_module=TorchCheckpointPickle(filename))
    except UnsafePickleError as refused:
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except Exception:  # noqa: BLE001 - torch's allow-list refuses it too: ours names the global
            raise refused from None


def strip_module_prefix(state):
    """``state`` with the ``module.`` prefix that (Distributed)DataParallel adds removed from every key."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
