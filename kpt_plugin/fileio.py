"""Atomic file output: every file kpt_plugin writes appears whole or not at all."""
import contextlib
import json
import os
import os.path as osp
import tempfile

__all__ = ['atomic_output', 'atomic_write_bytes', 'atomic_write_text', 'atomic_write_json']


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
