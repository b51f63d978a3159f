"""Paddle inference models: Paddle 3.x PIR (``model.json`` / PaddleX ``inference.json``) and Paddle 2.x legacy
(``model.pdmodel`` ProgramDesc), each with its combined ``*.pdiparams`` and optional ``*.pdiparams.info``.

Framework tensor names (``conv2d_12.w_0``, ``batch_norm2d_12.w_1``) become ppdet structured names through the
``.pdiparams.info`` table when the export ships one, else by creation order: ppdet numbers ``conv2d_K`` /
``batch_norm2d_K`` in module-creation order, which the slot table records (rank against rank, so a numbering that
does not start at 0 still fits). Non-weight tensors an export bakes in (PicoDet's anchors, strides and DFL
projection) are checked against the family's and dropped. The deploy config beside the program (``infer_cfg.yml``,
PaddleX ``inference.yml``) gives the family (``arch: PicoDet``), the input size when the program's is dynamic, and
PaddleX's ``Global.model_name`` (``info['model_name']``) so a caller can refuse a contradicting model name.
"""
import collections
import json
import os.path as osp
import re
import struct

import numpy as np

from . import archs
from .errors import WeightsError
from .families import drop_constants, family_of_deploy_arch
from .paddle_proto import parse_program_desc, tensor_desc
from .safe_pickle import UnsafePickleError, safe_load

__all__ = ['read_pdiparams', 'framework_to_structured', 'load_info_table', 'read_deploy_config',
           'read_deploy_family', 'read_paddle_pir', 'read_paddle_legacy']

# Paddle VarType.Type -> numpy dtype (paddle/fluid/framework/framework.proto)
_PADDLE_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
                  6: np.float64, 20: np.uint8, 21: np.int8}
_FEED_FETCH_TYPES = {9, 10, 15, 28}  # FEED_MINIBATCH, FETCH_LIST, READER, FEED_LIST: not saved
_FW_RE = re.compile(r'^(conv2d|batch_norm2d|batch_norm)_(\d+)\.([wb])_(\d+)')
_BN_SUFFIX = {('w', 0): 'weight', ('b', 0): 'bias', ('w', 1): '_mean', ('w', 2): '_variance'}


def read_pdiparams(path, names):
    """Read a combined Paddle params file: one DenseTensor record per name, in the order given.

    Record (Paddle ``SerializeToStream``): uint32 version, uint64 lod_level + LoD levels, uint32 tensor
    version, int32 desc size, ``TensorDesc`` protobuf, raw little-endian data.
    """
    with open(path, 'rb') as f:
        buf = f.read()
    out = collections.OrderedDict()
    pos = 0

    def take(n, what):
        nonlocal pos
        if pos + n > len(buf):
            raise WeightsError(f'{path}: truncated while reading {what} (record {len(out) + 1} of {len(names)}, '
                               f'byte {pos}, file size {len(buf)}); the file is incomplete - fetch it again')
        chunk = buf[pos:pos + n]
        pos += n
        return chunk

    for name in names:
        (version, ) = struct.unpack('<I', take(4, f'{name} header'))
        if version != 0:
            raise WeightsError(f'{path}: unsupported tensor record version {version} for {name}')
        (lod_level, ) = struct.unpack('<Q', take(8, f'{name} LoD'))
        for _ in range(lod_level):
            (size, ) = struct.unpack('<Q', take(8, f'{name} LoD'))
            take(size, f'{name} LoD')
        (tversion, ) = struct.unpack('<I', take(4, f'{name} tensor header'))
        (desc_size, ) = struct.unpack('<i', take(4, f'{name} tensor header'))
        if tversion != 0 or not 0 < desc_size < 1 << 16:
            raise WeightsError(f'{path}: corrupt tensor record for {name} (not a Paddle params file?)')
        dtype, dims = tensor_desc(take(desc_size, f'{name} tensor desc'))
        if dtype not in _PADDLE_DTYPES:
            raise WeightsError(f'{path}: unsupported data type {dtype} for {name}')
        dt = np.dtype(_PADDLE_DTYPES[dtype]).newbyteorder('<')
        count = int(np.prod(dims)) if dims else 1
        arr = np.frombuffer(take(count * dt.itemsize, f'{name} data'), dtype=dt).reshape(dims)
        out[name] = arr.astype(np.float32) if dt.kind == 'f' else arr.copy()
    if pos != len(buf):
        raise WeightsError(f'{path}: {len(buf) - pos} bytes left after {len(names)} tensors; the params file '
                           'does not belong to this program')
    return out


def load_info_table(directory, stem):
    """``<stem>.pdiparams.info`` (or ``model.pdiparams.info``): framework name -> {'structured_name': ...}."""
    for cand in (osp.join(directory, stem + '.pdiparams.info'), osp.join(directory, 'model.pdiparams.info')):
        if osp.isfile(cand):
            try:
                table = safe_load(cand)
            except UnsafePickleError as e:
                raise WeightsError(str(e)) from None
            except Exception as e:  # noqa: BLE001 - any unpickling failure means the side file is unusable
                raise WeightsError(f'{cand}: unreadable ({type(e).__name__}: {e})') from None
            if not isinstance(table, dict):
                raise WeightsError(f'{cand}: expected a dict, got {type(table).__name__}')
            return table
    return None


def _strip_suffix(name):
    # Paddle 3 PIR exports rename parameters "<name>_deepcopy_<n>"
    return re.sub(r'_deepcopy_\d+$', '', name)


def _by_creation_order(tensors, source, table, unmatched):
    convs, bns = collections.defaultdict(dict), collections.defaultdict(dict)
    for name, arr in tensors.items():
        m = _FW_RE.match(_strip_suffix(name))
        if not m and name.startswith('constant_folding@'):
            continue  # Paddle 3 export pass output (e.g. a fused normalisation constant), not a weight
        if not m:
            unmatched.append(name)
            continue
        kind, k, wb, idx = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        (convs if kind == 'conv2d' else bns)[k][(wb, idx)] = arr
    with_norm = table.norm_creation_order()
    conv_keys, bn_keys = sorted(convs), sorted(bns)
    if len(conv_keys) != len(table) or (bn_keys and len(bn_keys) != len(with_norm)):
        raise WeightsError(
            f'{source}: {len(conv_keys)} conv and {len(bn_keys)} batch-norm layers found; {table.description} has '
            f'{len(table)} and {len(with_norm)}. {table.not_this_model()}'
            + (f' Unrecognised tensors: {", ".join(unmatched[:12])}' if unmatched else ''))
    state = collections.OrderedDict()
    for slot, k in zip(table.creation_order(), conv_keys):
        for (wb, idx), arr in convs[k].items():
            if (wb, idx) == ('w', 0):
                state[slot.conv + '.weight'] = arr
            elif (wb, idx) == ('b', 0) and (slot.norm is None or not bn_keys):
                state[slot.conv + '.bias'] = arr
            else:
                unmatched.append(f'conv2d_{k}.{wb}_{idx}')
    for slot, k in zip(with_norm, bn_keys):
        for key, arr in bns[k].items():
            if key in _BN_SUFFIX:
                state[slot.norm + '.' + _BN_SUFFIX[key]] = arr
            else:
                unmatched.append(f'batch_norm2d_{k}.{key[0]}_{key[1]}')
    if not bn_keys:  # BN folded at export: conv bias -> identity BN
        for slot in with_norm:
            if slot.conv + '.bias' in state:
                table.fill_folded(state, slot, state[slot.conv + '.weight'], state.pop(slot.conv + '.bias'))
    return state


def framework_to_structured(tensors, source, table, info_table=None):
    """Rename ``{framework name: array}`` to ppdet structured names.

    Uses ``info_table`` (``.pdiparams.info``) when given, else the creation-order rank of ``conv2d_K`` /
    ``batch_norm2d_K`` against ``table``. A program whose BNs were folded (conv bias, no BN tensors) gets identity
    BNs. Raises :class:`WeightsError` listing unmatched tensors.
    """
    unmatched = []
    if info_table:
        state = collections.OrderedDict()
        for name, arr in tensors.items():
            entry = info_table.get(name) or info_table.get(_strip_suffix(name))
            sname = entry.get('structured_name') if isinstance(entry, dict) else None
            if sname:
                state[sname] = arr
            else:
                unmatched.append(name)
    else:
        state = _by_creation_order(tensors, source, table, unmatched)
    if unmatched:
        shown = ', '.join(unmatched[:12]) + (f', ... (+{len(unmatched) - 12} more)' if len(unmatched) > 12 else '')
        raise WeightsError(f'{source}: {len(unmatched)} tensors do not belong to {table.description}: {shown}. '
                           f'{table.not_this_model()}')
    return state


def _find_trainsize(node):
    if isinstance(node, dict):
        ts = node.get('trainsize')
        if isinstance(ts, (list, tuple)) and len(ts) == 2:
            return ts
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = _find_trainsize(item)
            if found:
                return found
    return None


def _find_resize(doc):
    """``[w, h]`` of the first ``Resize`` preprocess step (``target_size: [h, w]``), else None."""
    steps = doc.get('Preprocess') if isinstance(doc, dict) else None
    for step in steps if isinstance(steps, list) else ():
        ts = step.get('target_size') if isinstance(step, dict) and step.get('type') == 'Resize' else None
        if isinstance(ts, (list, tuple)) and len(ts) == 2:
            return [ts[1], ts[0]]
    return None


def _deploy_docs(directory):
    """The parsed deploy configs beside a program (PaddleX ``inference.yml`` first)."""
    import yaml
    for name in ('inference.yml', 'infer_cfg.yml'):
        path = osp.join(directory, name)
        if not osp.isfile(path):
            continue
        try:
            with open(path) as f:
                doc = yaml.safe_load(f)
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue  # an odd deploy config only loses the hint
        yield doc


def read_deploy_family(directory):
    """The model family the deploy config beside a program names (``arch: PicoDet`` / ``HRNet``), else None."""
    for doc in _deploy_docs(directory):
        family = family_of_deploy_arch(doc.get('arch')) if isinstance(doc, dict) else None
        if family:
            return family
    return None


def read_deploy_config(directory, family=None):
    """``(arch, model_name)`` from the deploy config beside a program, each None when not told.

    ``arch`` comes from ``trainsize: [w, h]`` (searched anywhere in PaddleDetection's ``infer_cfg.yml`` or
    PaddleX's ``inference.yml``) or a detector's ``Resize`` ``target_size: [h, w]``, else from the model name;
    ``model_name`` is PaddleX's ``Global.model_name``.
    """
    for doc in _deploy_docs(directory):
        glob = doc.get('Global') if isinstance(doc, dict) else None
        model_name = glob.get('model_name') if isinstance(glob, dict) else None
        model_name = str(model_name) if model_name else None
        ts = _find_trainsize(doc) or _find_resize(doc)
        arch = archs.arch_from_input_size(ts[0], ts[1], family) if ts else None
        if arch is None and model_name:
            arch = archs.guess_arch_from_name(model_name, family)
        if arch or model_name:
            return arch, model_name
    return None, None


def _conv_count(names):
    return len({m.group(2) for m in map(_FW_RE.match, map(_strip_suffix, names)) if m and m.group(1) == 'conv2d'})


def _structured(path, tensors, names, input_hw, table, family):
    """The program's tensors -> ``(ppdet state, info)``: family and table resolved, export constants dropped."""
    directory, stem = osp.dirname(path), osp.splitext(osp.basename(path))[0]
    arch = archs.arch_from_input_size(input_hw[1], input_hw[0], family) if input_hw else None
    family = family or read_deploy_family(directory) or (archs.get_arch(arch).family if arch else None)
    family, table = archs.pick_table(table, family, conv_count=_conv_count(names))
    cfg_arch, model_name = read_deploy_config(directory, family)
    arch = arch if arch and archs.get_arch(arch).family == family else None
    sizes = [a.input_size for a in archs.ARCHS.values() if a.family == family]
    known = archs.get_arch(arch or cfg_arch).input_size if arch or cfg_arch else None
    dropped, size = drop_constants(family, tensors, [known] if known else sizes)
    const_arch = archs.arch_from_input_size(*size, family) if size else None
    state = framework_to_structured(tensors, path, table, load_info_table(directory, stem))
    return state, dict(arch=arch or cfg_arch or const_arch, family=family, model_name=model_name,
                       constants=sorted(dropped.values()))


def read_paddle_pir(json_path, params_path, table=None, family=None):
    """Paddle 3.x PIR inference model (``model.json`` or PaddleX ``inference.json``) -> (ppdet state, info)."""
    try:
        with open(json_path) as f:
            prog = json.load(f)
        ops = prog['program']['regions'][0]['blocks'][0]['ops']
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise WeightsError(f'{json_path}: not a Paddle PIR program ({type(e).__name__}: {e})') from None
    names, input_hw = [], None
    for op in ops:
        if op.get('#') == 'p':
            names.append(op['A'][3])
        elif op.get('#') == '1.data':
            for a in op.get('A', []):
                if a.get('N') == 'shape' and len(a['AT']['D']) == 4:
                    input_hw = a['AT']['D'][2:]
    if not names:
        raise WeightsError(f'{json_path}: the program has no parameters')
    tensors = read_pdiparams(params_path, sorted(names))
    state, info = _structured(json_path, tensors, names, input_hw, table, family)
    return state, dict(info, format='paddle_pir', main_file=params_path)


def read_paddle_legacy(pdmodel_path, params_path, table=None, family=None):
    """Paddle 2.x inference model (ProgramDesc protobuf) -> (ppdet state, info)."""
    with open(pdmodel_path, 'rb') as f:
        buf = f.read()
    try:
        variables, ops = parse_program_desc(buf)
    except WeightsError as e:
        raise WeightsError(f'{pdmodel_path}: not a Paddle program ({e})') from None
    # save_inference_model saves every persistable variable except feed/fetch, sorted by name
    names = sorted(v['name'] for v in variables if v['persistable'] and v['type'] not in _FEED_FETCH_TYPES
                   and v['name'] not in ('feed', 'fetch'))
    if not names:
        raise WeightsError(f'{pdmodel_path}: the program has no parameters')
    input_hw = None
    feeds = {a for op in ops if op['type'] == 'feed' for a in op['outputs'].get('Out', [])}
    for v in variables:
        if v['name'] in feeds and v['dims'] and len(v['dims']) == 4:
            input_hw = v['dims'][2:]
    tensors = read_pdiparams(params_path, names)
    state, info = _structured(pdmodel_path, tensors, names, input_hw, table, family)
    return state, dict(info, format='paddle_legacy', main_file=params_path)
