"""A small protobuf wire-format decoder for Paddle's ``ProgramDesc`` (``.pdmodel``) and ``TensorDesc``.

Field numbers follow ``paddle/fluid/framework/framework.proto``; only what the readers need is decoded, so neither
paddle nor protobuf is required.
"""
from .errors import WeightsError

__all__ = ['iter_fields', 'tensor_desc', 'parse_program_desc', 'varint']


def varint(buf, pos):
    """Decode one base-128 varint at ``pos``; returns ``(value, new pos)``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WeightsError('truncated protobuf varint')
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WeightsError('malformed protobuf varint')


def iter_fields(buf):
    """Yield ``(field number, wire type, value)`` of one protobuf message (value: int or bytes)."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            size, pos = varint(buf, pos)
            val, pos = buf[pos:pos + size], pos + size
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise WeightsError(f'unsupported protobuf wire type {wt}')
        if pos > n:
            raise WeightsError('truncated protobuf message')
        yield field, wt, val


def _signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def tensor_desc(buf):
    """``TensorDesc {required Type data_type = 1; repeated int64 dims = 2;}`` -> ``(type, dims)``."""
    dtype, dims = None, []
    for f, wt, v in iter_fields(buf):
        if f == 1:
            dtype = v
        elif f == 2 and wt == 0:
            dims.append(_signed64(v))
        elif f == 2 and wt == 2:  # packed
            p = 0
            while p < len(v):
                d, p = varint(v, p)
                dims.append(_signed64(d))
    return dtype, dims


def _var_desc(buf):
    var = dict(name=None, type=None, persistable=False, dtype=None, dims=None)
    for f, _, v in iter_fields(buf):
        if f == 1:
            var['name'] = bytes(v).decode('utf-8')
        elif f == 3:
            var['persistable'] = bool(v)
        elif f == 2:  # VarType
            for f2, _, v2 in iter_fields(v):
                if f2 == 1:
                    var['type'] = v2
                elif f2 == 3:  # LoDTensorDesc {tensor = 1; lod_level = 2}
                    for f3, _, v3 in iter_fields(v2):
                        if f3 == 1:
                            var['dtype'], var['dims'] = tensor_desc(v3)
    return var


def _op_desc(buf):
    op = dict(type=None, inputs={}, outputs={})
    for f, _, v in iter_fields(buf):  # OpDesc {inputs = 1; outputs = 2; type = 3; attrs = 4}
        if f == 3:
            op['type'] = bytes(v).decode('utf-8')
        elif f in (1, 2):
            param, args = None, []
            for f2, _, v2 in iter_fields(v):
                if f2 == 1:
                    param = bytes(v2).decode('utf-8')
                elif f2 == 2:
                    args.append(bytes(v2).decode('utf-8'))
            op['inputs' if f == 1 else 'outputs'][param] = args
    return op


def parse_program_desc(buf):
    """Vars and ops of block 0 of a Paddle ``ProgramDesc`` (``.pdmodel``).

    Returns:
        tuple[list[dict], list[dict]]: vars as ``dict(name, type, persistable, dtype, dims)``; ops as
        ``dict(type, inputs={param: [args]}, outputs={param: [args]})``.
    """
    blocks = [v for f, wt, v in iter_fields(buf) if f == 1 and wt == 2]
    if not blocks:
        raise WeightsError('no block in ProgramDesc')
    variables, ops = [], []
    for f, wt, v in iter_fields(blocks[0]):
        if f == 3 and wt == 2:
            variables.append(_var_desc(v))
        elif f == 4 and wt == 2:
            ops.append(_op_desc(v))
    return variables, ops
