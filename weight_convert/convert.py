"""Convert PP-TinyPose weights into an mmengine checkpoint for our MMPose modules."""
import functools
import hashlib
import pickle
import os.path as osp
import re
import time

import torch

from kpt_plugin.fileio import atomic_output

from .mapping import ppdet_to_mmpose
from .pdparams import STRUCTURED_KEY

CONVERTER_VERSION = '1'

def _arch_configs():
    from kpt_plugin.zoo import ARCHS, get_model_info
    return {a: (get_model_info(a).config, get_model_info(a).input_size) for a in ARCHS}


#: arch name -> (config file relative to the repo / package .mim root, input size (w, h)); read from the zoo
ARCH_CONFIGS = _arch_configs()


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
    from kpt_plugin.zoo import get_config_path
    return get_config_path(arch)


def guess_arch_from_name(path):
    """``PP-TinyPose_128x96`` / ``_256x192`` when the path names the input size, else None."""
    m = re.search(r'(128x96|256x192)', str(path))
    return f'PP-TinyPose_{m.group(1)}' if m else None


@functools.lru_cache(maxsize=2)
def _reference_state(arch):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import kpt_plugin  # noqa: F401 - registers modules
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config_path(arch))
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def build_reference_state(arch='PP-TinyPose_128x96'):
    """The state dict (names, shapes) our model expects, from a freshly built model (cached per arch)."""
    return dict(_reference_state(arch))


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
    with atomic_output(out) as tmp:
        torch.save(checkpoint, tmp)
    return osp.abspath(out)


def read_weights(src):
    """Read any supported weight source into ``(ppdet_state, info)`` (see :mod:`weight_convert.formats`)."""
    from .formats import read_any
    return read_any(str(src))


def _resolve_arch(src, arch, info):
    detected = info.get('arch')
    if arch and arch not in ARCH_CONFIGS:
        raise KeyError(f'unknown arch {arch!r}; choose one of {sorted(ARCH_CONFIGS)}')
    if arch and detected and arch != detected:
        raise WeightsMismatchError(f'{src}: the model takes {detected} inputs ({info["format"]} input shape) but '
                                   f'--arch {arch} was given; drop --arch or pass --arch {detected}')
    guessed = guess_arch_from_name(osp.basename(osp.abspath(str(src))))
    return arch or detected or guessed or 'PP-TinyPose_128x96', not (arch or detected or guessed)


def convert(src, out, arch=None, model=None):
    """Convert ``src`` into an mmengine checkpoint at ``out``.

    Args:
        src (str): weight source in any format :func:`weight_convert.formats.read_any` reads (file or dir).
        out (str): output ``.pth`` path (written atomically).
        arch (str, optional): ``PP-TinyPose_128x96`` or ``PP-TinyPose_256x192``; inferred from the source
            when possible (input shape, ``infer_cfg.yml``, file name), refused when it contradicts the source.
            Both sizes share every tensor shape, so it only selects the config recorded in the meta.
        model (str, optional): zoo name recorded in the meta.

    Returns:
        dict: the checkpoint ``meta`` (plus ``seconds``).
    """
    t0 = time.time()
    ppdet_state, info = read_weights(src)
    arch, defaulted = _resolve_arch(src, arch, info)
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
        converter_version=CONVERTER_VERSION, arch_inferred=defaulted)
    if model:
        meta['model'] = model
    save_checkpoint_atomic(dict(meta=meta, state_dict=full), out)
    meta['seconds'] = round(time.time() - t0, 3)
    return meta


# ---------------------------------------------------------------------------------------- -> .pdparams

class _NumpyCompatPickler(pickle._Pickler):  # noqa: SLF001 - the pure-Python pickler lets us name globals
    """Pickles numpy arrays naming ``numpy.core.multiarray._reconstruct`` (what numpy 1.x writes), so
    paddle environments on numpy 1.x *and* 2.x can load the file (numpy 2 keeps ``numpy.core`` importable)."""

    def save_global(self, obj, name=None):
        if obj is _reconstruct():
            self.write(pickle.GLOBAL + b'numpy.core.multiarray\n_reconstruct\n')
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _reconstruct():
    import numpy as np
    return np.zeros(1).__reduce__()[0]


def paddle_framework_names():
    """``{ppdet structured name: Paddle framework name}`` of a freshly built ppdet PP-TinyPose (what
    ``paddle.save`` records under ``StructuredToParameterName@@``): ``conv2d_K.w_0``, ``batch_norm2d_K.w_1`` ..."""
    from .formats import conv_slots
    table = {}
    for k, (conv, norm, _) in enumerate(conv_slots()):
        table[conv + '.weight'] = f'conv2d_{k}.w_0'
        table[conv + '.bias'] = f'conv2d_{k}.b_0'
        if norm:
            for suffix, fw in (('weight', 'w_0'), ('bias', 'b_0'), ('_mean', 'w_1'), ('_variance', 'w_2')):
                table[f'{norm}.{suffix}'] = f'batch_norm2d_{k}.{fw}'
    return table


def _ppdet_order(state):
    """Keys in ppdet's own state-dict order (ConvNormLayer lists its norm before its conv; plain
    Sequential conv+BN lists the conv first), unknown keys last."""
    from .formats import conv_slots
    order = []
    for conv, norm, _ in conv_slots():
        conv_keys = [conv + '.weight', conv + '.bias']
        norm_keys = [f'{norm}.{s}' for s in ('weight', 'bias', '_mean', '_variance')] if norm else []
        order += norm_keys + conv_keys if conv.endswith('.conv') else conv_keys + norm_keys
    known = [k for k in order if k in state]
    return known + [k for k in state if k not in set(known)]


def write_pdparams(ppdet_state, out):
    """Write ``{ppdet name: array}`` as a ``paddle.save``-style ``.pdparams`` (pickle protocol 4, numpy
    arrays, plus the ``StructuredToParameterName@@`` table), atomically."""
    import numpy as np
    names = paddle_framework_names()
    obj = {k: np.ascontiguousarray(ppdet_state[k], dtype=np.float32) for k in _ppdet_order(ppdet_state)}
    obj[STRUCTURED_KEY] = {k: names.get(k, k) for k in ppdet_state}
    with atomic_output(out) as tmp:
        with open(tmp, 'wb') as f:
            _NumpyCompatPickler(f, protocol=4).dump(obj)
    return osp.abspath(out)


def export_pdparams(src, out, arch=None):
    """Any supported source (typically our ``.pth``) -> a PaddleDetection ``.pdparams`` that the TinyPose
    config loads (``-o weights=out``). Checks the tensors against PP-TinyPose first.

    Returns:
        dict: ``source_format``, ``arch``, ``tensors``, ``seconds``.
    """
    t0 = time.time()
    ppdet_state, info = read_weights(src)
    arch, _ = _resolve_arch(src, arch, info)
    check_state(ppdet_to_mmpose(ppdet_state), build_reference_state(arch), source=src)
    write_pdparams(ppdet_state, out)
    return dict(source_format=info['format'], arch=arch, tensors=len(ppdet_state),
                seconds=round(time.time() - t0, 3))
