"""Weights on disk: download (verified, atomic), unpack, convert once into the cache, and resolve a model name or a
weights path into ``(config, checkpoint)``.

* :func:`resolve_checkpoint` (name=None, weights=None) -> ``(config_path, checkpoint_path)``; ``weights`` may be a
  ``.pth``, ``.pdparams``, a Paddle inference / PaddleX model directory, an OpenVINO IR directory/``.xml`` or an
  ncnn ``.param``;
* :func:`cache_dir` -> ``$KPT_PLUGIN_HOME`` or ``~/.cache/kpt_plugin``.
"""
import hashlib
import logging
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

from weight_convert.archs import get_arch
from weight_convert.io import atomic_output, atomic_write_text, sha256sum

from weight_convert.errors import MissingWeightsError

from ..errors import WeightsError, ZooError
from .registry import MODELS, get_config_path, get_model_info

__all__ = ['cache_dir', 'cached_file', 'download', 'resolve_checkpoint', 'checkpoint_arch']

logger = logging.getLogger('kpt_plugin')

#: seconds to wait for a server before declaring the machine offline
NETWORK_TIMEOUT = float(os.environ.get('KPT_PLUGIN_NETWORK_TIMEOUT', 10))


def cache_dir():
    """``$KPT_PLUGIN_HOME`` or ``~/.cache/kpt_plugin`` (created on demand by the writers)."""
    return osp.abspath(osp.expanduser(os.environ.get('KPT_PLUGIN_HOME') or osp.join('~', '.cache', 'kpt_plugin')))


def _offline_message(url, err):
    return (f'cannot download {url} ({type(err).__name__}: {getattr(err, "reason", err)}). '
            'No network? Download it on a machine with internet, or pass a local file instead: '
            '--weights PATH (Python: create_model(name, model_dir=PATH)) accepts a .pth checkpoint, a .pdparams '
            'file, a Paddle inference or PaddleX model directory, an OpenVINO IR directory (model.xml + model.bin) '
            'or an ncnn .param (+ .bin).')


def cached_file(path, build, what):
    """``path`` from the cache if its recorded size and sha256 still match, else (re)built by ``build(path)``.

    Each entry has a ``.sha256`` record (``<size> <sha256>``) written after the entry itself; an entry that fails
    the check (truncated by a kill, corrupted, or without a record) is rebuilt, with a warning naming it.
    """
    record = path + '.sha256'
    if osp.isfile(path):
        try:
            with open(record) as f:
                size, digest = f.read().split()
            if osp.getsize(path) == int(size) and sha256sum(path) == digest:
                return path
        except (OSError, ValueError):
            pass
        logger.warning('%s: the cached %s failed verification (size / sha256); rebuilding it', path, what)
    build(path)
    atomic_write_text(record, f'{osp.getsize(path)} {sha256sum(path)}\n')
    return path


def download(url, dst, sha256=None, timeout=None, progress=True):
    """Download ``url`` to ``dst`` atomically, showing progress on stderr; verify ``sha256`` when given.

    Raises:
        ZooError: the server is unreachable (fails within ``timeout`` seconds), or the digest differs.
    """
    timeout = NETWORK_TIMEOUT if timeout is None else timeout
    with atomic_output(dst) as tmp:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - URLs come from our table
        except (urllib.error.URLError, OSError) as e:
            raise ZooError(_offline_message(url, e)) from None
        total = int(resp.headers.get('Content-Length') or 0) if hasattr(resp, 'headers') else 0
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total or None, unit='B', unit_scale=True, desc=osp.basename(dst), file=sys.stderr,
                       leave=False)
        h = hashlib.sha256()
        with open(tmp, 'wb') as f, resp:
            while True:
                try:
                    block = resp.read(1 << 20)
                except OSError as e:
                    raise ZooError(_offline_message(url, e)) from None
                if not block:
                    break
                f.write(block)
                h.update(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()
        if total and osp.getsize(tmp) != total:
            raise ZooError(f'{url}: download truncated ({osp.getsize(tmp)} of {total} bytes); try again')
        if sha256 and h.hexdigest() != sha256:
            raise ZooError(f'{url}: sha256 {h.hexdigest()} does not match the expected {sha256}; the file is '
                           'corrupt or has changed on the server. Delete it and retry, or pass --weights PATH.')
    return dst


def _extract(archive, dest):
    """Unpack a .tar/.zip into ``dest`` (members confined to ``dest``); returns ``dest``."""
    import tarfile
    import zipfile
    tmp = tempfile.mkdtemp(prefix='.extract-', dir=osp.dirname(dest))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for m in z.namelist():
                    if m.startswith('/') or '..' in m.split('/'):
                        raise ZooError(f'{archive}: unsafe member path {m!r}')
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                for m in t.getmembers():
                    if m.name.startswith('/') or '..' in m.name.split('/') or not (m.isfile() or m.isdir()):
                        raise ZooError(f'{archive}: unsafe member {m.name!r}')
                t.extractall(tmp)  # noqa: S202 - members checked above
        if osp.isdir(dest):
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp)
    return dest


def _source_file(path):
    """The file whose sha256 identifies a weight source (the file itself, or the weights file of a dir)."""
    from weight_convert.formats import detect
    return detect(path)['main_file']


def _checkpoint_meta(path):
    """``meta`` of a torch zip checkpoint without loading its tensors, or None when that cannot be had so.

    ``create_model`` loads the checkpoint to build the model right after this; reading the pickle alone (~ms)
    instead of a second full ``torch.load`` (~0.3 s) shortens the time to the first result. Only plain containers
    are rebuilt (tensors and every other torch object become None), so nothing in the file is executed.
    """
    import collections
    import pickle
    import zipfile

    class _MetaOnly(pickle.Unpickler):

        def persistent_load(self, pid):  # tensor storages: not read
            return None

        def find_class(self, module, name):
            if (module, name) == ('collections', 'OrderedDict'):
                return collections.OrderedDict
            if module.split('.')[0] == 'torch':
                return lambda *args, **kwargs: None
            raise pickle.UnpicklingError(f'{module}.{name}')

    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith('/data.pkl'))
            with z.open(name) as f:
                ckpt = _MetaOnly(f).load()
    except Exception:  # noqa: BLE001 - legacy format, other pickled types: the full (restricted) load decides
        return None
    return ckpt.get('meta') if isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict) else None


def checkpoint_arch(path):
    """The canonical ``arch`` recorded in a checkpoint's ``meta`` (our converter writes it), else None."""
    meta = _checkpoint_meta(path)
    if meta is None:
        from weight_convert.io import load_checkpoint
        try:
            ckpt = load_checkpoint(path, map_location='cpu')
        except Exception as e:  # noqa: BLE001 - any unreadable file
            raise WeightsError(f'{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e}); pass a .pth '
                               'written by `kpt-plugin convert`, or the original Paddle weights') from None
        meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    arch = meta.get('arch') if isinstance(meta, dict) else None
    if arch is None:
        return None
    # earlier releases wrote the alias (PP-TinyPose_128x96): compare canonical names
    return get_arch(arch).name


def _convert_cached(src, arch, model_name=None, expected_sha256=None):
    """Convert ``src`` into ``cache_dir()/checkpoints`` keyed by the source's sha256; reuse when present."""
    from weight_convert.convert import CONVERTER_VERSION, convert
    main = _source_file(src)
    digest = sha256sum(main)
    if expected_sha256 and digest != expected_sha256:
        raise ZooError(f'{main}: sha256 {digest} does not match the expected {expected_sha256}')
    out_dir = osp.join(cache_dir(), 'checkpoints')
    stem = model_name or 'converted'
    size = '' if not arch else '-' + arch.split('_')[-1]
    # the converter version is part of the key: a newer converter re-converts instead of reusing
    out = osp.join(out_dir, f'{stem}-{digest[:16]}{size}-c{CONVERTER_VERSION}.pth')
    return cached_file(out, lambda path: convert(src, path, arch=arch, model=model_name), 'converted checkpoint')


def resolve_checkpoint(name=None, weights=None, progress=True):
    """Config and checkpoint for a zoo name and/or a weights path.

    Args:
        name (str, optional): zoo name; selects the config and, without ``weights``, the official weights
            (downloaded into ``cache_dir()/downloads``, converted into ``cache_dir()/checkpoints``, reused).
        weights (str, optional): local weights in any supported form: ``.pth`` (used as is), ``.pdparams``,
            Paddle inference directory (PIR or legacy), OpenVINO IR (dir or ``.xml``), ncnn (``.param``).
            Non-``.pth`` sources are converted once into the cache, keyed by their sha256.
        progress (bool): show download progress.

    Returns:
        tuple[str, str]: ``(config_path, checkpoint_path)``.

    Raises:
        ZooError: unknown name, no network (raised within ``NETWORK_TIMEOUT`` s, message says how to pass a
            local file), digest mismatch; ValueError/FileNotFoundError for unusable ``weights``.
    """
    if name is None and weights is None:
        raise ZooError(f'give a model name ({", ".join(MODELS)}) or local weights (model_dir=PATH, --weights PATH)')
    info = get_model_info(name) if name is not None else None
    if weights is not None:
        weights = str(weights)
        if not osp.exists(weights):
            raise MissingWeightsError(f'{weights}: no such file or directory; pass an existing weights file or '
                                      'folder')
        if weights.endswith('.pth') and osp.isfile(weights):
            recorded = checkpoint_arch(weights)
            if info is not None and recorded is not None and recorded != info.arch:
                raise WeightsError(f'{weights}: the checkpoint was converted for {recorded} but the model is '
                                   f'{info.name} ({info.arch}); pass the matching model name or weights')
            arch = info.arch if info else recorded
            if arch is None:
                from weight_convert.archs import guess_arch_from_name
                arch = guess_arch_from_name(osp.basename(weights))
            if arch is None:
                raise ZooError(f'{weights}: the checkpoint does not record its input size; pass the model name '
                               f'too ({", ".join(MODELS)})')
            return get_config_path(arch), osp.abspath(weights)
        if info is None:
            from weight_convert.archs import guess_arch_from_name
            from weight_convert.formats import detect
            fmt = detect(weights)['format']
            if fmt == 'pdparams' and guess_arch_from_name(osp.basename(weights)) is None:
                # a training checkpoint holds no input size (both sizes share every tensor shape)
                raise ZooError(f'{weights}: a .pdparams file does not tell its input size; pass the model name '
                               f'too ({", ".join(MODELS)})')
        ckpt = _convert_cached(weights, info.arch if info else None, model_name=info.name if info else None)
        arch = info.arch if info else checkpoint_arch(ckpt)
        return get_config_path(arch), ckpt
    url = info.urls[info.default_source]
    dl = osp.join(cache_dir(), 'downloads', f'{info.name}-{osp.basename(url)}')
    expected = info.sha256.get(info.default_source)

    def fetch(path):
        t0 = time.time()
        download(url, path, sha256=expected, progress=progress)
        if progress:
            print(f'downloaded {url} in {time.time() - t0:.1f} s', file=sys.stderr)

    cached_file(dl, fetch, 'download')
    src = dl
    if dl.endswith(('.tar', '.zip', '.tar.gz', '.tgz')):
        src = dl + '.d'
        if not osp.isdir(src):
            _extract(dl, src)
    try:
        ckpt = _convert_cached(src, info.arch, model_name=info.name)
    except ValueError as e:
        raise ZooError(f'{dl} (downloaded from {url}) could not be converted: {e}\nDelete it to download again.') \
            from None
    return get_config_path(info.arch), ckpt


