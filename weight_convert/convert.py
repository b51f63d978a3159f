"""Convert PP-TinyPose weights into an mmengine checkpoint for our MMPose modules."""
import hashlib
import os
import os.path as osp
import re
import tempfile
import time

import torch

from .mapping import ppdet_to_mmpose
from .pdparams import read_pdparams

CONVERTER_VERSION = '1'

#: arch name -> (config file relative to the repo / package .mim root, input size (w, h))
ARCH_CONFIGS = {
    'PP-TinyPose_128x96': ('configs/pp_tinypose/td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py', (96, 128)),
    'PP-TinyPose_256x192': ('configs/pp_tinypose/td-hm_pp-tinypose_4xb128-420e_aic-coco-256x192.py', (192, 256)),
}


class WeightsMismatchError(ValueError):
    """The source weights do not fit the PP-TinyPose architecture."""


def sha256sum(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def config_path(arch):
    """Absolute path of the MMPose config for ``arch`` (source tree or installed ``.mim``)."""
    if arch not in ARCH_CONFIGS:
        raise KeyError(f'unknown arch {arch!r}; choose one of {sorted(ARCH_CONFIGS)}')
    rel = ARCH_CONFIGS[arch][0]
    import kpt_plugin
    pkg = osp.dirname(osp.abspath(kpt_plugin.__file__))
    for root in (osp.dirname(pkg), osp.join(pkg, '.mim')):
        if osp.isfile(osp.join(root, rel)):
            return osp.join(root, rel)
    raise FileNotFoundError(f'config {rel} not found next to kpt_plugin ({pkg})')


def guess_arch_from_name(path):
    """``PP-TinyPose_128x96`` / ``_256x192`` when the path names the input size, else None."""
    m = re.search(r'(128x96|256x192)', str(path))
    return f'PP-TinyPose_{m.group(1)}' if m else None


def build_reference_state(arch='PP-TinyPose_128x96'):
    """The state dict (names, shapes) our model expects, from a freshly built model."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import kpt_plugin  # noqa: F401 - registers modules
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config_path(arch))
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    return model.state_dict()


def check_state(state, reference, source='weights'):
    """Raise :class:`WeightsMismatchError` listing unknown, missing and mis-shaped tensors."""
    ref = {k: v for k, v in reference.items() if not k.endswith('num_batches_tracked')}
    unknown = sorted(set(state) - set(ref))
    missing = sorted(set(ref) - set(state))
    bad_shape = [f'{k}: {tuple(state[k].shape)} vs expected {tuple(ref[k].shape)}'
                 for k in state if k in ref and tuple(state[k].shape) != tuple(ref[k].shape)]
    if unknown or missing or bad_shape:
        lines = [f'{source} do not match PP-TinyPose ({len(ref)} tensors expected):']
        for title, items in (('unknown', unknown), ('missing', missing), ('shape mismatch', bad_shape)):
            if items:
                shown = ', '.join(items[:12]) + (f', ... (+{len(items) - 12} more)' if len(items) > 12 else '')
                lines.append(f'  {len(items)} {title}: {shown}')
        lines.append('  Is this a PP-TinyPose (TopDownHRNet + LiteHRNet wider_naive) model?')
        raise WeightsMismatchError('\n'.join(lines))


def save_checkpoint_atomic(checkpoint, out):
    """``torch.save`` to a temp file in the target folder, then rename (no half-written files)."""
    out = osp.abspath(out)
    os.makedirs(osp.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pth', dir=osp.dirname(out))
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return out


def read_weights(src):
    """Read any supported weight source into ``(ppdet_state, info)``.

    ``info`` holds ``format`` and optionally ``arch`` (when the source tells it). Only ``.pdparams`` is
    handled here; other formats are dispatched by :mod:`weight_convert.formats` when available.
    """
    src = str(src)
    try:
        from .formats import read_any  # noqa: WPS433 - optional richer dispatcher
    except ImportError:
        read_any = None
    if read_any is not None:
        return read_any(src)
    if not osp.exists(src):
        raise FileNotFoundError(f'{src}: no such file or directory')
    if src.endswith('.pdparams'):
        return read_pdparams(src), dict(format='pdparams', arch=None)
    raise ValueError(f'{src}: unsupported weight format (expected a .pdparams file)')


def convert(src, out, arch=None):
    """Convert ``src`` into an mmengine checkpoint at ``out``.

    Args:
        src (str): weight source (``.pdparams``; more formats via :mod:`weight_convert.formats`).
        out (str): output ``.pth`` path (written atomically).
        arch (str, optional): ``PP-TinyPose_128x96`` or ``PP-TinyPose_256x192``; inferred from the source
            when possible. Both sizes share every tensor shape, so it only selects the config recorded in
            the checkpoint meta.

    Returns:
        dict: the checkpoint ``meta``.
    """
    t0 = time.time()
    ppdet_state, info = read_weights(src)
    detected = info.get('arch') or guess_arch_from_name(src)
    if arch and detected and arch != detected and info.get('arch'):
        raise WeightsMismatchError(f'{src}: the weights are for {detected} but --arch {arch} was given')
    arch = arch or detected or 'PP-TinyPose_128x96'
    if arch not in ARCH_CONFIGS:
        raise KeyError(f'unknown arch {arch!r}; choose one of {sorted(ARCH_CONFIGS)}')
    state = ppdet_to_mmpose(ppdet_state)
    reference = build_reference_state(arch)
    check_state(state, reference, source=src)
    # keep the model's BN counters so MMPose loads with no missing keys
    full = {k: (state[k] if k in state else v) for k, v in reference.items()}
    src_file = src if osp.isfile(src) else info.get('main_file')
    meta = dict(
        source=osp.abspath(src), source_format=info['format'],
        source_sha256=sha256sum(src_file) if src_file and osp.isfile(src_file) else None,
        arch=arch, config=ARCH_CONFIGS[arch][0], converter='kpt_plugin.weight_convert',
        converter_version=CONVERTER_VERSION, arch_inferred=not bool(info.get('arch')) and detected is None)
    save_checkpoint_atomic(dict(meta=meta, state_dict=full), out)
    meta['seconds'] = round(time.time() - t0, 3)
    return meta
