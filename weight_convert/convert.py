"""Convert weights of any supported format into an mmengine checkpoint for our models (MMPose / mmdet), and back.

``weight_convert.convert`` is this module and also callable as :func:`convert`: ``weight_convert.convert(src, out)``
and ``from weight_convert.convert import convert`` both work. torch is imported only to write the checkpoint.
"""
import collections
import os.path as osp
import sys
import time
import types

import numpy as np

from . import archs
from .errors import WeightsError
from .families import family_of_names, get_family, to_mmpose
from .formats import read_any
from .io import atomic_output, sha256sum
from .pdparams import write_pdparams

__all__ = ['CONVERTER_VERSION', 'convert', 'export_pdparams', 'reference_state', 'check_state', 'check_finite']

#: part of the zoo's cache key: bump when the checkpoints written change (2: canonical arch names in meta;
#: 3: PicoDet, ``meta['family']``)
CONVERTER_VERSION = '3'
_TRACKED = 'num_batches_tracked'


def reference_state(arch):
    """``{our name: shape}`` of every tensor our model of ``arch`` holds, slot by slot, then the buffers.

    Built from the static slot table (conv weight [+ bias], then the BatchNorm's four tensors and its
    ``num_batches_tracked`` counter, which PyTorch keeps and Paddle does not). For PP-TinyPose this is the MMPose
    model's state-dict order; PicoDet's slots run in execution order, not in our modules' registration order
    (loading is by name).
    """
    arch = archs.get_arch(arch)
    fam = get_family(arch.family)
    out = collections.OrderedDict()
    for slot in arch.slots:
        for name, shape in slot.shapes().items():
            out[fam.to_mmpose_name(name)] = shape
        if slot.norm:
            out[fam.to_mmpose_name(slot.norm + '.weight')[:-len('weight')] + _TRACKED] = ()
    for name, value in arch.slots.buffers.items():
        out[fam.to_mmpose_name(name)] = value.shape
    return out


def check_state(state, reference, source='weights', description='the model'):
    """Raise :class:`WeightsError` listing unknown, missing and mis-shaped tensors of ``state`` (MMPose names)."""
    ref = {k: tuple(v) for k, v in reference.items() if not k.endswith(_TRACKED)}
    unknown = sorted(set(state) - set(ref))
    missing = sorted(set(ref) - set(state))
    bad_shape = [f'{k}: {tuple(state[k].shape)} vs expected {ref[k]}'
                 for k in state if k in ref and tuple(state[k].shape) != ref[k]]
    if unknown or missing or bad_shape:
        lines = [f'{source} do not match {description} ({len(ref)} tensors expected):']
        for title, items in (('unknown', unknown), ('missing', missing), ('shape mismatch', bad_shape)):
            if items:
                shown = ', '.join(items[:12]) + (f', ... (+{len(items) - 12} more)' if len(items) > 12 else '')
                lines.append(f'  {len(items)} {title}: {shown}')
        lines.append(f'  Is this a {description} model?')
        raise WeightsError('\n'.join(lines))


def check_finite(state, source):
    """Raise :class:`WeightsError` naming ``source`` and the first tensor holding NaN or inf."""
    for name, arr in state.items():
        arr = np.asarray(arr)
        if arr.dtype.kind == 'f' and not np.isfinite(arr).all():
            bad = int(arr.size - np.isfinite(arr).sum())
            raise WeightsError(f'{source}: tensor {name} holds {bad} non-finite values (NaN/inf) of {arr.size}; '
                               'the weights are corrupt (a diverged training run or a broken export) - '
                               'use another copy')


def _resolve_arch(src, arch, info):
    """``(canonical arch, defaulted)``: the given arch (refused when it contradicts the source), else the source's,
    else the one its file name tells, else the default of the source's family."""
    given = archs.get_arch(arch).name if arch else None
    detected = info.get('arch')
    if given and detected and given != detected:
        raise WeightsError(f'{src}: the model takes {detected} inputs ({info["format"]} input shape) but '
                           f'{arch} was asked for (--arch or the model name); drop it or pass {detected}')
    guessed = archs.guess_arch_from_name(osp.basename(osp.abspath(str(src))), info.get('family'))
    found = given or detected or guessed
    return found or archs.default_arch(info.get('family')), not found


def _check_model_name(src, model, info):
    """Refuse a PaddleX model directory whose own ``Global.model_name`` is another model than the one asked for."""
    own = info.get('model_name')
    if model and own and str(model).lower() != str(own).lower():
        raise WeightsError(f'{src}: this is PaddleX\'s {own} (Global.model_name in its inference.yml) but the '
                           f'model asked for is {model}; pass model_name={own!r} (--model {own}) or the {model} '
                           'model directory')


def _read_checked(src, arch, model=None):
    """Read ``src`` and check it against the arch (and the model name asked for): ``(arch, defaulted, source
    state, our state, info)``."""
    src = str(src)
    state, info = read_any(src, arch=arch)
    _check_model_name(src, model, info)
    arch, defaulted = _resolve_arch(src, arch, info)
    spec = archs.get_arch(arch)
    own = family_of_names(state)
    if own and own != spec.family:
        choices = ', '.join(a.name for a in archs.ARCHS.values() if a.family == own)
        raise WeightsError(f'{src}: the tensors are a {own} model\'s, not {arch}\'s; drop --arch or pass one of '
                           f'{choices}')
    spec.slots.complete_buffers(state, src)  # graph formats hold no buffers; others must hold the fixed values
    mm = to_mmpose(spec.family, state)
    check_state(mm, reference_state(arch), source=src, description=spec.slots.description)
    check_finite(mm if info['format'] == 'pth' else state, src)  # name the tensor as the file names it
    return arch, defaulted, state, mm, info


def save_checkpoint_atomic(checkpoint, out):
    """``torch.save`` to a temp file in the target folder, then rename (no half-written files)."""
    import torch
    with atomic_output(out) as tmp:
        torch.save(checkpoint, tmp)
    return osp.abspath(out)


def convert(src, out, arch=None, model=None):
    """Convert ``src`` into an mmengine checkpoint at ``out``.

    The ``meta`` records ``arch``, ``family``, ``config``, the source (path, format, sha256), the converter version
    and, for a detector, ``dataset_meta`` (classes, palette), which mmdet's ``init_detector`` reads.

    Args:
        src (str): weight source in any format :func:`weight_convert.formats.read_any` reads (file or dir).
        out (str): output ``.pth`` path (written atomically).
        arch (str, optional): architecture (``pp_tinypose_128x96``, ``picodet_s_lcnet_pedestrian_320``; the alias
            ``PP-TinyPose_128x96`` works too); inferred from the source when possible (input shape, deploy config,
            file name), refused when it contradicts the source. The sizes of a family share every tensor, so it
            selects the config in the meta.
        model (str, optional): model name recorded as ``meta['model']`` (the caller resolves and checks it; a
            PaddleX source's own name is ``meta['source_model_name']``).

    Returns:
        dict: the checkpoint ``meta`` (plus ``seconds``).

    Raises:
        WeightsError: unreadable source, tensors that do not fit the arch, NaN/inf tensors, contradicting arch.
    """
    import torch
    t0 = time.time()
    arch, defaulted, _, mm, info = _read_checked(src, arch, model)
    full = collections.OrderedDict()
    for k, shape in reference_state(arch).items():
        # BN counters come fresh, as a newly built model has them, so MMPose loads with no missing keys
        full[k] = torch.zeros((), dtype=torch.int64) if k.endswith(_TRACKED) else torch.from_numpy(mm[k])
    src = str(src)
    src_file = src if osp.isfile(src) else info.get('main_file')
    meta = dict(
        source=osp.abspath(src), source_format=info['format'],
        source_sha256=sha256sum(src_file) if src_file and osp.isfile(src_file) else None,
        arch=arch, family=archs.get_arch(arch).family, config=archs.get_arch(arch).config,
        converter='kpt_plugin.weight_convert', converter_version=CONVERTER_VERSION, arch_inferred=defaulted)
    dataset_meta = getattr(get_family(meta['family']), 'DATASET_META', None)
    if dataset_meta:
        meta['dataset_meta'] = dict(dataset_meta)
    if info.get('model_name'):
        meta['source_model_name'] = info['model_name']
    if model:
        meta['model'] = str(model)
    save_checkpoint_atomic(dict(meta=meta, state_dict=full), out)
    meta['seconds'] = round(time.time() - t0, 3)
    return meta


def export_pdparams(src, out, arch=None):
    """Any supported source (typically our ``.pth``) -> a PaddleDetection ``.pdparams`` that the ppdet config
    loads (``-o weights=out``). Checks the tensors against the arch first.

    Returns:
        dict: ``source_format``, ``arch``, ``tensors``, ``seconds``.
    """
    t0 = time.time()
    arch, _, _, mm, info = _read_checked(src, arch)
    spec = archs.get_arch(arch)
    state = get_family(spec.family).from_mmpose(mm)  # every key ppdet has (PicoDet's aliases, unused scales)
    write_pdparams(state, out, spec.slots)
    return dict(source_format=info['format'], arch=arch, tensors=len(state), seconds=round(time.time() - t0, 3))


class _CallableModule(types.ModuleType):
    """Lets ``weight_convert.convert(src, out)`` call :func:`convert` although the name is this module."""

    def __call__(self, *args, **kwargs):
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
