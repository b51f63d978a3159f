"""Readers for every released PP-TinyPose weight format, without paddle / openvino / ncnn installed.

:func:`read_any` detects the format of a file or directory and returns ``(ppdet_state, info)``:
``ppdet_state`` maps PaddleDetection structured names (``backbone.stem.conv1.conv.weight``) to float32
arrays, ``info`` holds ``format``, ``arch`` (when the source tells the input size, else None) and
``main_file`` (the file whose sha256 identifies the source).

Formats:

* ``pdparams`` - ``paddle.save`` state dict (restricted unpickler);
* ``pth`` - an mmengine / MMPose checkpoint (for ``--to pdparams``);
* ``paddle_pir`` - Paddle 3.x inference model (``*.json`` + ``*.pdiparams``);
* ``paddle_legacy`` - Paddle 2.x inference model (``*.pdmodel`` ProgramDesc protobuf + ``*.pdiparams``);
* ``openvino`` - OpenVINO IR (``*.xml`` + ``*.bin``, fp16/fp32 constants, BatchNorm folded into the convs);
* ``ncnn`` - ncnn (``*.param`` + ``*.bin``, fp16/fp32 storage, BatchNorm folded).

Framework tensor names (``conv2d_12.w_0``, ``batch_norm2d_12.w_1``) are turned into structured names with the
``model.pdiparams.info`` table when the export ships one, else by creation order: PaddleDetection numbers
``conv2d_K`` / ``batch_norm2d_K`` in module-creation order, which for PP-TinyPose is also the state-dict order
and the graph (execution) order. Graph formats without names (ncnn) are therefore matched conv by conv in
graph order, with every shape checked. Folded convs become conv weight + an identity BatchNorm carrying the
folded bias (``weight=1, bias=b, mean=0, var=1-eps``), so ``BN(x) == x + b`` exactly in float32.
"""
import collections
import functools
import glob
import json
import os.path as osp
import re
import struct
import xml.etree.ElementTree as ET

import numpy as np

from kpt_plugin.safe_pickle import UnsafePickleError, safe_load
from .pdparams import read_pdparams

__all__ = ['read_any', 'detect', 'read_pdiparams', 'parse_program_desc', 'FormatError', 'BN_EPS']

#: BatchNorm epsilon of PP-TinyPose (ppdet's ConvNormLayer / nn.BatchNorm2D default)
BN_EPS = 1e-5
_IDENTITY_VAR = np.float32(1.0 - BN_EPS)

# Paddle VarType.Type -> numpy dtype (paddle/fluid/framework/framework.proto)
_PADDLE_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
                  6: np.float64, 20: np.uint8, 21: np.int8}
_FEED_FETCH_TYPES = {9, 10, 15, 28}  # FEED_MINIBATCH, FETCH_LIST, READER, FEED_LIST: not saved
_KNOWN_SIZES = {(96, 128): 'PP-TinyPose_128x96', (192, 256): 'PP-TinyPose_256x192'}


class FormatError(ValueError):
    """The input is not a readable weight file of a supported format."""


# --------------------------------------------------------------------------------------------- template


@functools.lru_cache(maxsize=1)
def conv_slots():
    """The ppdet conv layers of PP-TinyPose in creation (= state-dict = graph) order.

    Returns:
        list[tuple[str, str | None, tuple]]: ``(conv prefix, norm prefix or None, weight shape)`` where the
        conv weight is ``prefix + '.weight'`` and the BN tensors ``norm + '.weight'`` etc.
    """
    from .convert import build_reference_state
    from .mapping import mmpose_name_to_ppdet
    ref = build_reference_state()
    names = {mmpose_name_to_ppdet(k): tuple(v.shape) for k, v in ref.items() if not k.endswith('num_batches_tracked')}
    convs = [n[:-len('.weight')] for n, s in names.items() if n.endswith('.weight') and len(s) == 4]
    norms = [n[:-len('._mean')] for n in names if n.endswith('._mean')]
    # ppdet creates conv2d_K together with batch_norm2d_K; the convs past the last BN (final_conv) have none
    slots = [(c, norms[i] if i < len(norms) else None, names[c + '.weight']) for i, c in enumerate(convs)]
    return slots


def _fill_folded(state, slot, weight, bias):
    """Store a conv whose BN is folded: conv weight + identity BN carrying ``bias``."""
    conv, norm, _ = slot
    state[conv + '.weight'] = np.ascontiguousarray(weight, dtype=np.float32)
    if bias is None:
        bias = np.zeros(weight.shape[0], np.float32)
    bias = np.asarray(bias, np.float32).reshape(-1)
    if norm is None:
        state[conv + '.bias'] = bias
        return
    state[norm + '.weight'] = np.ones_like(bias)
    state[norm + '.bias'] = bias
    state[norm + '._mean'] = np.zeros_like(bias)
    state[norm + '._variance'] = np.full_like(bias, _IDENTITY_VAR)


def _shape_error(source, i, slot, got):
    return FormatError(f'{source}: conv #{i} has weight shape {tuple(got)} but PP-TinyPose expects '
                       f'{slot[2]} for {slot[0]}; is this a PP-TinyPose (LiteHRNet wider_naive) model?')


def folded_convs_to_state(convs, source):
    """``[(weight, bias)]`` in graph order -> ppdet state with identity BNs (shapes checked)."""
    slots = conv_slots()
    if len(convs) != len(slots):
        raise FormatError(f'{source}: {len(convs)} convolutions found, PP-TinyPose has {len(slots)}; '
                          'is this a PP-TinyPose (LiteHRNet wider_naive) model?')
    state = collections.OrderedDict()
    for i, (slot, (w, b)) in enumerate(zip(slots, convs)):
        if tuple(w.shape) != slot[2]:
            raise _shape_error(source, i, slot, w.shape)
        _fill_folded(state, slot, w, b)
    return state


_FW_RE = re.compile(r'^(conv2d|batch_norm2d|batch_norm)_(\d+)\.([wb])_(\d+)')
_BN_SUFFIX = {('w', 0): 'weight', ('b', 0): 'bias', ('w', 1): '_mean', ('w', 2): '_variance'}


def framework_to_structured(tensors, source, info_table=None):
    """Rename ``{framework name: array}`` to ppdet structured names.

    Uses ``info_table`` (``model.pdiparams.info``: framework name -> {'structured_name': ...}) when given,
    else the creation-order rank of ``conv2d_K`` / ``batch_norm2d_K``. A program whose BNs were folded
    (conv bias, no BN tensors) gets identity BNs. Raises :class:`FormatError` listing unmatched tensors.
    """
    unmatched = []
    state = collections.OrderedDict()
    if info_table:
        for name, arr in tensors.items():
            entry = info_table.get(name) or info_table.get(_strip_suffix(name))
            sname = entry.get('structured_name') if isinstance(entry, dict) else None
            if sname:
                state[sname] = arr
            else:
                unmatched.append(name)
    else:
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
        slots = conv_slots()
        with_norm = [s for s in slots if s[1]]
        conv_keys, bn_keys = sorted(convs), sorted(bns)
        if len(conv_keys) != len(slots) or (bn_keys and len(bn_keys) != len(with_norm)):
            raise FormatError(
                f'{source}: {len(conv_keys)} conv and {len(bn_keys)} batch-norm layers found; PP-TinyPose has '
                f'{len(slots)} and {len(with_norm)}. Is this a PP-TinyPose (LiteHRNet wider_naive) model?'
                + (f' Unrecognised tensors: {", ".join(unmatched[:12])}' if unmatched else ''))
        for slot, k in zip(slots, conv_keys):
            parts = convs[k]
            for (wb, idx), arr in parts.items():
                if (wb, idx) == ('w', 0):
                    state[slot[0] + '.weight'] = arr
                elif (wb, idx) == ('b', 0) and (slot[1] is None or not bn_keys):
                    state[slot[0] + '.bias'] = arr
                else:
                    unmatched.append(f'conv2d_{k}.{wb}_{idx}')
        for slot, k in zip(with_norm, bn_keys):
            for key, arr in bns[k].items():
                if key in _BN_SUFFIX:
                    state[slot[1] + '.' + _BN_SUFFIX[key]] = arr
                else:
                    unmatched.append(f'batch_norm2d_{k}.{key[0]}_{key[1]}')
        if not bn_keys:  # BN folded at export: conv bias -> identity BN
            for slot in with_norm:
                if slot[0] + '.bias' in state:
                    _fill_folded(state, slot, state[slot[0] + '.weight'], state.pop(slot[0] + '.bias'))
    if unmatched:
        shown = ', '.join(unmatched[:12]) + (f', ... (+{len(unmatched) - 12} more)' if len(unmatched) > 12 else '')
        raise FormatError(f'{source}: {len(unmatched)} tensors do not belong to PP-TinyPose: {shown}. '
                          'Is this a PP-TinyPose (LiteHRNet wider_naive) model?')
    return state


def _strip_suffix(name):
    # Paddle 3 PIR exports rename parameters "<name>_deepcopy_<n>"
    return re.sub(r'_deepcopy_\d+$', '', name)


# ------------------------------------------------------------------------------------- protobuf (wire)


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError('truncated protobuf varint')
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError('malformed protobuf varint')


def iter_fields(buf):
    """Yield ``(field number, wire type, value)`` of one protobuf message (value: int or bytes)."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            size, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + size], pos + size
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise FormatError(f'unsupported protobuf wire type {wt}')
        if pos > n:
            raise FormatError('truncated protobuf message')
        yield field, wt, val


def _signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _tensor_desc(buf):
    """TensorDesc {required Type data_type = 1; repeated int64 dims = 2;} -> (type, dims)."""
    dtype, dims = None, []
    for f, wt, v in iter_fields(buf):
        if f == 1:
            dtype = v
        elif f == 2 and wt == 0:
            dims.append(_signed64(v))
        elif f == 2 and wt == 2:  # packed
            p = 0
            while p < len(v):
                d, p = _varint(v, p)
                dims.append(_signed64(d))
    return dtype, dims


def parse_program_desc(buf):
    """Vars and ops of block 0 of a Paddle ``ProgramDesc`` (``.pdmodel``).

    Returns:
        tuple[list[dict], list[dict]]: vars as ``dict(name, type, persistable, dtype, dims)``; ops as
        ``dict(type, inputs={param: [args]}, outputs={param: [args]})``.
    """
    blocks = [v for f, wt, v in iter_fields(buf) if f == 1 and wt == 2]
    if not blocks:
        raise FormatError('no block in ProgramDesc')
    variables, ops = [], []
    for f, wt, v in iter_fields(blocks[0]):
        if f == 3 and wt == 2:  # VarDesc
            var = dict(name=None, type=None, persistable=False, dtype=None, dims=None)
            for f2, _, v2 in iter_fields(v):
                if f2 == 1:
                    var['name'] = bytes(v2).decode('utf-8')
                elif f2 == 3:
                    var['persistable'] = bool(v2)
                elif f2 == 2:  # VarType
                    for f3, _, v3 in iter_fields(v2):
                        if f3 == 1:
                            var['type'] = v3
                        elif f3 == 3:  # LoDTensorDesc {tensor = 1; lod_level = 2}
                            for f4, _, v4 in iter_fields(v3):
                                if f4 == 1:
                                    var['dtype'], var['dims'] = _tensor_desc(v4)
            variables.append(var)
        elif f == 4 and wt == 2:  # OpDesc {inputs = 1; outputs = 2; type = 3; attrs = 4}
            op = dict(type=None, inputs={}, outputs={})
            for f2, _, v2 in iter_fields(v):
                if f2 == 3:
                    op['type'] = bytes(v2).decode('utf-8')
                elif f2 in (1, 2):
                    param, args = None, []
                    for f3, _, v3 in iter_fields(v2):
                        if f3 == 1:
                            param = bytes(v3).decode('utf-8')
                        elif f3 == 2:
                            args.append(bytes(v3).decode('utf-8'))
                    op['inputs' if f2 == 1 else 'outputs'][param] = args
            ops.append(op)
    return variables, ops


# ------------------------------------------------------------------------------------------- .pdiparams


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
            raise FormatError(f'{path}: truncated while reading {what} (record {len(out) + 1} of {len(names)}, '
                              f'byte {pos}, file size {len(buf)}); the file is incomplete - fetch it again')
        chunk = buf[pos:pos + n]
        pos += n
        return chunk

    for name in names:
        (version, ) = struct.unpack('<I', take(4, f'{name} header'))
        if version != 0:
            raise FormatError(f'{path}: unsupported tensor record version {version} for {name}')
        (lod_level, ) = struct.unpack('<Q', take(8, f'{name} LoD'))
        for _ in range(lod_level):
            (size, ) = struct.unpack('<Q', take(8, f'{name} LoD'))
            take(size, f'{name} LoD')
        (tversion, ) = struct.unpack('<I', take(4, f'{name} tensor header'))
        (desc_size, ) = struct.unpack('<i', take(4, f'{name} tensor header'))
        if tversion != 0 or not 0 < desc_size < 1 << 16:
            raise FormatError(f'{path}: corrupt tensor record for {name} (not a Paddle params file?)')
        dtype, dims = _tensor_desc(take(desc_size, f'{name} tensor desc'))
        if dtype not in _PADDLE_DTYPES:
            raise FormatError(f'{path}: unsupported data type {dtype} for {name}')
        dt = np.dtype(_PADDLE_DTYPES[dtype]).newbyteorder('<')
        count = int(np.prod(dims)) if dims else 1
        arr = np.frombuffer(take(count * dt.itemsize, f'{name} data'), dtype=dt).reshape(dims)
        out[name] = arr.astype(np.float32) if dt.kind == 'f' else arr.copy()
    if pos != len(buf):
        raise FormatError(f'{path}: {len(buf) - pos} bytes left after {len(names)} tensors; the params file does '
                          'not belong to this program')
    return out


def _load_info_table(directory, stem):
    for cand in (osp.join(directory, stem + '.pdiparams.info'), osp.join(directory, 'model.pdiparams.info')):
        if osp.isfile(cand):
            try:
                table = safe_load(cand)
            except UnsafePickleError as e:
                raise FormatError(str(e)) from None
            except Exception as e:  # noqa: BLE001
                raise FormatError(f'{cand}: unreadable ({type(e).__name__}: {e})') from None
            if not isinstance(table, dict):
                raise FormatError(f'{cand}: expected a dict, got {type(table).__name__}')
            return table
    return None


def _arch_from_hw(h, w):
    return _KNOWN_SIZES.get((int(w), int(h))) if h and w and h > 0 and w > 0 else None


def _arch_from_infer_cfg(directory):
    """``trainsize: [w, h]`` of the deploy config (PaddleDetection ``infer_cfg.yml``, PaddleX
    ``inference.yml``; searched anywhere in the document), else None."""
    import yaml

    def find(node):
        if isinstance(node, dict):
            ts = node.get('trainsize')
            if isinstance(ts, (list, tuple)) and len(ts) == 2:
                return _arch_from_hw(ts[1], ts[0])
            node = list(node.values())
        if isinstance(node, list):
            for item in node:
                found = find(item)
                if found:
                    return found
        return None

    for name in ('infer_cfg.yml', 'inference.yml'):
        path = osp.join(directory, name)
        if osp.isfile(path):
            try:
                with open(path) as f:
                    found = find(yaml.safe_load(f))
            except (yaml.YAMLError, OSError, TypeError, ValueError):
                found = None  # an odd deploy config only loses the hint
            if found:
                return found
    return None


def read_paddle_pir(json_path, params_path):
    """Paddle 3.x PIR inference model -> (ppdet state, info)."""
    try:
        with open(json_path) as f:
            prog = json.load(f)
        ops = prog['program']['regions'][0]['blocks'][0]['ops']
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise FormatError(f'{json_path}: not a Paddle PIR program ({type(e).__name__}: {e})') from None
    names, arch = [], None
    for op in ops:
        if op.get('#') == 'p':
            names.append(op['A'][3])
        elif op.get('#') == '1.data':
            for a in op.get('A', []):
                if a.get('N') == 'shape':
                    dims = a['AT']['D']
                    if len(dims) == 4:
                        arch = _arch_from_hw(dims[2], dims[3])
    if not names:
        raise FormatError(f'{json_path}: the program has no parameters')
    tensors = read_pdiparams(params_path, sorted(names))
    directory = osp.dirname(json_path)
    stem = osp.splitext(osp.basename(json_path))[0]
    state = framework_to_structured(tensors, json_path, _load_info_table(directory, stem))
    return state, dict(format='paddle_pir', arch=arch or _arch_from_infer_cfg(directory), main_file=params_path)


def read_paddle_legacy(pdmodel_path, params_path):
    """Paddle 2.x inference model (ProgramDesc protobuf) -> (ppdet state, info)."""
    with open(pdmodel_path, 'rb') as f:
        buf = f.read()
    try:
        variables, ops = parse_program_desc(buf)
    except FormatError as e:
        raise FormatError(f'{pdmodel_path}: not a Paddle program ({e})') from None
    # save_inference_model saves every persistable variable except feed/fetch, sorted by name
    names = sorted(v['name'] for v in variables if v['persistable'] and v['type'] not in _FEED_FETCH_TYPES
                   and v['name'] not in ('feed', 'fetch'))
    if not names:
        raise FormatError(f'{pdmodel_path}: the program has no parameters')
    arch = None
    feeds = {a for op in ops if op['type'] == 'feed' for a in op['outputs'].get('Out', [])}
    for v in variables:
        if v['name'] in feeds and v['dims'] and len(v['dims']) == 4:
            arch = _arch_from_hw(v['dims'][2], v['dims'][3])
    tensors = read_pdiparams(params_path, names)
    directory = osp.dirname(pdmodel_path)
    stem = osp.splitext(osp.basename(pdmodel_path))[0]
    state = framework_to_structured(tensors, pdmodel_path, _load_info_table(directory, stem))
    return state, dict(format='paddle_legacy', arch=arch or _arch_from_infer_cfg(directory), main_file=params_path)


# ------------------------------------------------------------------------------------------- OpenVINO IR

_OV_DTYPES = {'f16': np.float16, 'f32': np.float32, 'f64': np.float64}


def read_openvino(xml_path, bin_path):
    """OpenVINO IR with BN folded into each conv -> (ppdet state, info)."""
    try:
        root = ET.parse(xml_path).getroot()
        layers = {lay.get('id'): lay for lay in root.find('layers')}
        edges = [(e.get('from-layer'), e.get('from-port'), e.get('to-layer'), e.get('to-port'))
                 for e in root.find('edges')]
    except (ET.ParseError, TypeError, AttributeError) as e:
        raise FormatError(f'{xml_path}: not an OpenVINO IR ({type(e).__name__}: {e})') from None
    with open(bin_path, 'rb') as f:
        blob = f.read()
    producer = {(t, tp): (fl, fp) for fl, fp, t, tp in edges}
    consumers = collections.defaultdict(list)
    for fl, fp, t, tp in edges:
        consumers[fl].append((t, tp))

    def in_ports(lay):
        inp = lay.find('input')
        return [p.get('id') for p in inp] if inp is not None else []

    def port_dims(lay, section, idx=0):
        sec = lay.find(section)
        return [int(d.text) for d in list(sec)[idx].findall('dim')]

    def trace_const(lid, names):
        """Follow Convert/Reshape back to a Const; return its data (float32) and collect layer names."""
        lay = layers[lid]
        names.append(lay.get('name', ''))
        if lay.get('type') == 'Const':
            data = lay.find('data')
            dt = _OV_DTYPES.get(data.get('element_type'))
            if dt is None:
                raise FormatError(f'{xml_path}: constant {lay.get("name")} has unsupported type '
                                  f'{data.get("element_type")}')
            off, size = int(data.get('offset')), int(data.get('size'))
            if off + size > len(blob):
                raise FormatError(f'{bin_path}: truncated ({len(blob)} bytes, constant {lay.get("name")} needs '
                                  f'{off + size}); the file is incomplete - copy it again')
            return np.frombuffer(blob, dtype=np.dtype(dt).newbyteorder('<'), count=size // np.dtype(dt).itemsize,
                                 offset=off).astype(np.float32)
        if lay.get('type') in ('Convert', 'Reshape', 'Squeeze', 'Unsqueeze'):
            src = producer.get((lid, in_ports(lay)[0]))
            if src:
                return trace_const(src[0], names)
        raise FormatError(f'{xml_path}: weights of a convolution come from a {lay.get("type")} layer '
                          f'({lay.get("name")}), not a constant; unsupported IR')

    def rt_names(lay):
        return [a.get('value') or '' for a in lay.iter('attribute') if a.get('name') == 'fused_names']

    mapping = _read_ov_mapping(osp.splitext(xml_path)[0] + '.mapping')
    convs = []
    for lid, lay in layers.items():
        if lay.get('type') not in ('Convolution', 'GroupConvolution'):
            continue
        names = [lay.get('name', '')] + rt_names(lay)
        wsrc = producer.get((lid, in_ports(lay)[1]))
        weight = trace_const(wsrc[0], names).reshape(port_dims(lay, 'input', 1))
        if lay.get('type') == 'GroupConvolution':  # [G, O/G, I/G, kh, kw] -> [O, I/G, kh, kw]
            g, og, ig, kh, kw = weight.shape
            weight = weight.reshape(g * og, ig, kh, kw)
        bias = None
        for t, tp in consumers.get(lid, []):
            add = layers[t]
            if add.get('type') != 'Add':
                continue
            other = [p for p in in_ports(add) if p != tp]
            src = producer.get((t, other[0])) if other else None
            if src is None or layers[src[0]].get('type') not in ('Const', 'Convert'):
                continue
            names += [add.get('name', '')] + rt_names(add)
            bias = trace_const(src[0], names).reshape(-1)
            break
        names += [mapping.get(n, '') for n in list(names)]
        convs.append(dict(weight=weight, bias=bias, names=' '.join(names), layer=lid))
    conv_ids = {c['layer']: c for c in convs}
    for c in convs:  # nearest upstream convs (through the data input only)
        deps, stack, seen = set(), [producer.get((c['layer'], in_ports(layers[c['layer']])[0]))], set()
        while stack:
            src = stack.pop()
            if src is None or src[0] in seen:
                continue
            seen.add(src[0])
            if src[0] in conv_ids:
                deps.add(id(conv_ids[src[0]]))
                continue
            stack.extend(producer.get((src[0], p)) for p in in_ports(layers[src[0]]))
        c['deps'] = deps
    arch = None
    for lay in layers.values():
        if lay.get('type') == 'Parameter':
            shape = [int(s) if s.strip().lstrip('-').isdigit() else -1
                     for s in (lay.find('data').get('shape') or '').split(',')]
            if len(shape) == 4:
                arch = _arch_from_hw(shape[2], shape[3])
    state = _name_graph_convs(convs, xml_path, osp.dirname(xml_path))
    return state, dict(format='openvino', arch=arch or _arch_from_infer_cfg(osp.dirname(xml_path)), main_file=bin_path)


def _read_ov_mapping(path):
    """``model.mapping``: IR layer name -> framework names (one string), if the file exists."""
    if not osp.isfile(path):
        return {}
    out = collections.defaultdict(str)
    try:
        for m in ET.parse(path).getroot():
            fw, ir = m.find('framework'), m.find('IR')
            if fw is not None and ir is not None:
                out[ir.get('name')] += ' ' + (fw.get('name') or '') + ' ' + (fw.get('output_port_id') or '')
    except ET.ParseError:
        return {}
    return out


def _assign_by_dataflow(slots, convs, budget=100000):
    """Order ``convs`` like ``slots``: shapes equal, upstream convs first; depth-first with backtracking."""
    placed, order, steps = set(), [], 0
    stack = [0]  # index into the candidate list of the current slot
    cands_at = []
    while len(order) < len(slots):
        i = len(order)
        if len(cands_at) <= i:
            cands_at.append([c for c in convs if id(c) not in placed and tuple(c['weight'].shape) == slots[i][2]
                             and c['deps'] <= placed])
        k = stack[-1]
        steps += 1
        if k < len(cands_at[i]) and steps < budget:
            pick = cands_at[i][k]
            placed.add(id(pick))
            order.append(pick)
            stack.append(0)
            continue
        if not order or steps >= budget:
            return None
        cands_at.pop()
        stack.pop()
        placed.discard(id(order.pop()))
        stack[-1] += 1
    return order


def _name_graph_convs(convs, source, directory):
    """Assign graph convs (weight, bias, names) to PP-TinyPose slots.

    A conv is named by the Paddle tensor names the converter left on it (``batch_norm2d_K.*`` of its folded
    BN, or ``conv2d_K.w_0``); through ``model.pdiparams.info`` when present, else by creation-order rank.
    Without names, graph order is used. Every shape is checked.
    """
    slots = conv_slots()
    table = _load_info_table(directory, 'model')
    keyed = []
    for c in convs:
        bn = re.findall(r'batch_norm2d_(\d+)\.', c['names'])
        cv = re.findall(r'(?<![\w])conv2d_(\d+)\.w_0', c['names'])
        keyed.append(('bn', int(bn[0])) if bn else ('conv', int(cv[0])) if cv else None)
    if len(convs) == len(slots) and all(keyed) and len(set(keyed)) == len(keyed):
        by_slot = {}
        if table:
            index = {s[0]: i for i, s in enumerate(slots)}
            index.update({s[1]: i for i, s in enumerate(slots) if s[1]})
            for c, (kind, k) in zip(convs, keyed):
                entry = table.get(f'batch_norm2d_{k}.w_0' if kind == 'bn' else f'conv2d_{k}.w_0')
                sname = entry.get('structured_name', '') if isinstance(entry, dict) else ''
                if sname.rsplit('.', 1)[0] in index:
                    by_slot[index[sname.rsplit('.', 1)[0]]] = c
        else:
            bn_rank = {k: i for i, k in enumerate(sorted(k for kind, k in keyed if kind == 'bn'))}
            norm_slots = [i for i, s in enumerate(slots) if s[1]]
            plain_slots = [i for i, s in enumerate(slots) if not s[1]]
            cv_rank = {k: i for i, k in enumerate(sorted(k for kind, k in keyed if kind == 'conv'))}
            if len(bn_rank) == len(norm_slots) and len(cv_rank) == len(plain_slots):
                for c, (kind, k) in zip(convs, keyed):
                    by_slot[norm_slots[bn_rank[k]] if kind == 'bn' else plain_slots[cv_rank[k]]] = c
        if len(by_slot) == len(slots):
            return folded_convs_to_state([(by_slot[i]['weight'], by_slot[i]['bias']) for i in range(len(slots))],
                                         source)
    # no names: walk the slots in creation order (= Paddle's op order) and take, each time, the first conv of
    # the graph whose shape fits and whose upstream convs are all placed: a topological order constrained by
    # the shapes, which undoes the serializer's reordering of independent branches
    # Parallel convs of equal shape on the same input (fuse paths 0->1 and 0->2) are told apart by what
    # follows them: backtrack when a later slot finds no candidate.
    order = _assign_by_dataflow(slots, convs)
    if order is None:
        return folded_convs_to_state([(c['weight'], c['bias']) for c in convs], source)  # raises with detail
    return folded_convs_to_state([(c['weight'], c['bias']) for c in order], source)


# ------------------------------------------------------------------------------------------------ ncnn

# layers that hold no weights in the .bin (anything else with weights is refused, not misread)
_NCNN_WEIGHTLESS = {'Input', 'Split', 'Slice', 'Concat', 'Reshape', 'Permute', 'ReLU', 'Interp', 'BinaryOp',
                    'Crop', 'Flatten', 'Softmax', 'Sigmoid', 'Clip', 'Pooling', 'Eltwise', 'Noop', 'ShuffleChannel',
                    'UnaryOp', 'Squeeze', 'ExpandDims', 'ArgMax', 'HardSigmoid', 'HardSwish', 'Padding'}


def _ncnn_params(tokens):
    kv = {}
    for t in tokens:
        k, _, v = t.partition('=')
        k = int(k)
        if k <= -23300:  # array param: -23300-id=count,v1,v2... (kept apart from scalar ids)
            kv[('array', -k - 23300)] = [float(x) if '.' in x or 'e' in x else int(x) for x in v.split(',')[1:]]
        else:
            kv[k] = float(v) if ('.' in v or 'e' in v.lower()) and not v.lstrip('-').isdigit() else int(v)
    return kv


def read_ncnn(param_path, bin_path):
    """ncnn ``.param`` + ``.bin`` (convs with BN folded) -> (ppdet state, info)."""
    with open(param_path) as f:
        lines = [ln.split() for ln in f.read().splitlines() if ln.strip()]
    if not lines or lines[0] != ['7767517']:
        raise FormatError(f'{param_path}: not an ncnn .param file (magic 7767517 missing)')
    with open(bin_path, 'rb') as f:
        blob = f.read()
    pos = 0

    def load(count, typed, what):
        nonlocal pos

        def take(n):
            nonlocal pos
            if pos + n > len(blob):
                raise FormatError(f'{bin_path}: truncated while reading {what} ({len(blob)} bytes); the file is '
                                  'incomplete - copy it again')
            chunk = blob[pos:pos + n]
            pos += n
            return chunk

        if not typed:
            return np.frombuffer(take(4 * count), '<f4').copy()
        tag = struct.unpack('<I', take(4))[0]
        if tag == 0x01306B47:  # fp16
            data = np.frombuffer(take((2 * count + 3) // 4 * 4), '<f2')[:count]
            return data.astype(np.float32)
        if tag == 0x000D4B38:
            raise FormatError(f'{bin_path}: int8-quantised weights are not supported ({what})')
        if tag == 0 or tag == 0x0002C056:
            return np.frombuffer(take(4 * count), '<f4').copy()
        # any other non-zero flag: 256-entry float table + uint8 indices
        table = np.frombuffer(take(1024), '<f4')
        idx = np.frombuffer(take((count + 3) // 4 * 4), np.uint8)[:count]
        return table[idx].astype(np.float32)

    convs, arch = [], None
    for tokens in lines[2:]:
        ltype, name = tokens[0], tokens[1]
        nin, nout = int(tokens[2]), int(tokens[3])
        kv = _ncnn_params(tokens[4 + nin + nout:])
        if ltype in ('Convolution', 'ConvolutionDepthWise'):
            out_c, k = kv[0], kv.get(1, 1)
            kh = kv.get(11, k)
            wsize = kv[6]
            if kv.get(8, 0):
                raise FormatError(f'{param_path}: int8 convolution {name} is not supported')
            w = load(wsize, True, f'{name} weights')
            in_per_group = wsize // (out_c * k * kh)
            weight = w.reshape(out_c, in_per_group, kh, k)
            bias = load(out_c, False, f'{name} bias') if kv.get(5, 0) else None
            convs.append((weight, bias))
        elif ltype == 'Reshape' and arch is None and {0, 1, 2} <= set(kv):
            arch = _arch_from_hw(kv[1] * 4, kv[0] * 4)
        elif ltype not in _NCNN_WEIGHTLESS:
            raise FormatError(f'{param_path}: layer {name} of type {ltype} is not supported (PP-TinyPose has only '
                              'convolutions with weights)')
    if pos != len(blob):
        raise FormatError(f'{bin_path}: {len(blob) - pos} bytes left after all layers; the .bin does not belong '
                          f'to {param_path}')
    state = folded_convs_to_state(convs, param_path)
    return state, dict(format='ncnn', arch=arch, main_file=bin_path)


# ------------------------------------------------------------------------------------------- dispatcher


def _read_pth(path):
    import torch
    from kpt_plugin.safe_pickle import TorchCheckpointPickle
    from .mapping import mmpose_to_ppdet
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=TorchCheckpointPickle(str(path)))
    except UnsafePickleError as e:
        raise FormatError(str(e)) from None
    except Exception as e:  # noqa: BLE001
        raise FormatError(f'{path}: not a readable checkpoint ({type(e).__name__}: {e})') from None
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise FormatError(f'{path}: no state_dict in the checkpoint')
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    return mmpose_to_ppdet(sd), dict(format='pth', arch=meta.get('arch'), main_file=path)


def _pairs(directory, first_ext, second_ext):
    out = []
    for p in sorted(glob.glob(osp.join(directory, '*' + first_ext))):
        stem = p[:-len(first_ext)]
        if osp.isfile(stem + second_ext):
            out.append((p, stem + second_ext))
    return out


def detect(src):
    """Detect the weight format of ``src`` without reading the tensors.

    Returns:
        dict: ``format`` and ``files`` (the paths the reader needs) and ``main_file``.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        FormatError: nothing recognisable (the message lists what was looked for).
    """
    src = str(src)
    if not osp.exists(src):
        raise FileNotFoundError(f'{src}: no such file or directory')
    if osp.isfile(src):
        low = src.lower()
        stem = osp.splitext(src)[0]
        if low.endswith('.pdparams'):
            return dict(format='pdparams', files=(src, ), main_file=src)
        if low.endswith(('.pth', '.pt')):
            return dict(format='pth', files=(src, ), main_file=src)
        if low.endswith(('.json', '.pdmodel', '.pdiparams')):
            for ext, fmt in (('.json', 'paddle_pir'), ('.pdmodel', 'paddle_legacy')):
                if (low.endswith(ext) or low.endswith('.pdiparams')) and osp.isfile(stem + ext) \
                        and osp.isfile(stem + '.pdiparams'):
                    return dict(format=fmt, files=(stem + ext, stem + '.pdiparams'), main_file=stem + '.pdiparams')
            raise FormatError(f'{src}: a Paddle inference model needs both {osp.basename(stem)}.json (or .pdmodel) '
                              f'and {osp.basename(stem)}.pdiparams in {osp.dirname(src) or "."}')
        if low.endswith(('.xml', '.bin')) and osp.isfile(stem + '.xml') and osp.isfile(stem + '.bin') \
                and not osp.isfile(stem + '.param'):
            return dict(format='openvino', files=(stem + '.xml', stem + '.bin'), main_file=stem + '.bin')
        if low.endswith(('.param', '.bin')) and osp.isfile(stem + '.param'):
            if not osp.isfile(stem + '.bin'):
                raise FormatError(f'{src}: the ncnn weights {osp.basename(stem)}.bin are missing')
            return dict(format='ncnn', files=(stem + '.param', stem + '.bin'), main_file=stem + '.bin')
        raise FormatError(f'{src}: unsupported weight file; expected .pth, .pdparams, a Paddle inference model '
                          '(.json/.pdmodel + .pdiparams), an OpenVINO IR (.xml + .bin) or ncnn (.param + .bin)')
    found = []
    for first, second, fmt in (('.json', '.pdiparams', 'paddle_pir'), ('.pdmodel', '.pdiparams', 'paddle_legacy'),
                               ('.xml', '.bin', 'openvino'), ('.param', '.bin', 'ncnn')):
        for a, b in _pairs(src, first, second):
            found.append(dict(format=fmt, files=(a, b), main_file=b))
    singles = sorted(glob.glob(osp.join(src, '*.pdparams')) + glob.glob(osp.join(src, '*.pth')))
    for p in singles:
        found.append(dict(format='pdparams' if p.endswith('.pdparams') else 'pth', files=(p, ), main_file=p))
    if len(found) == 1:
        return found[0]
    subdirs = [d for d in sorted(glob.glob(osp.join(src, '*'))) if osp.isdir(d)]
    if not found and len(subdirs) == 1:  # an unpacked archive: tinypose_128x96/{model.pdmodel, ...}
        return detect(subdirs[0])
    if not found:
        raise FormatError(f'{src}: no model found in this directory; expected model.json or model.pdmodel + '
                          'model.pdiparams (Paddle inference), model.xml + model.bin (OpenVINO), *.param + *.bin '
                          '(ncnn), or a .pdparams/.pth file')
    listing = ', '.join(osp.basename(f['files'][0]) for f in found)
    raise FormatError(f'{src}: several models in this directory ({listing}); pass the file you mean')


_READERS = {
    'pdparams': lambda files: (read_pdparams(files[0]), dict(format='pdparams', arch=None, main_file=files[0])),
    'pth': lambda files: _read_pth(files[0]),
    'paddle_pir': lambda files: read_paddle_pir(*files),
    'paddle_legacy': lambda files: read_paddle_legacy(*files),
    'openvino': lambda files: read_openvino(*files),
    'ncnn': lambda files: read_ncnn(*files),
}


def read_any(src):
    """Read any supported weight source into ``(ppdet_state, info)`` (see the module docstring)."""
    found = detect(src)
    state, info = _READERS[found['format']](found['files'])
    info.setdefault('main_file', found['main_file'])
    return state, info
