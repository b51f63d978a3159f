"""ncnn models (``.param`` text + ``.bin`` weights; fp16 / fp32 / table-quantised storage, BatchNorm folded).

ncnn keeps no Paddle names, so the convs fill the slot table in graph order, every shape checked.
"""
import os.path as osp
import struct

import numpy as np

from . import archs
from .errors import WeightsError

__all__ = ['read_ncnn']

# layers that hold no weights in the .bin (anything else with weights is refused, not misread)
_WEIGHTLESS = {'Input', 'Split', 'Slice', 'Concat', 'Reshape', 'Permute', 'ReLU', 'Interp', 'BinaryOp',
               'Crop', 'Flatten', 'Softmax', 'Sigmoid', 'Clip', 'Pooling', 'Eltwise', 'Noop', 'ShuffleChannel',
               'UnaryOp', 'Squeeze', 'ExpandDims', 'ArgMax', 'HardSigmoid', 'HardSwish', 'Padding'}
_FP16_TAG, _INT8_TAG, _FP32_TAGS = 0x01306B47, 0x000D4B38, (0, 0x0002C056)
#: heatmap stride of the pose head: the output Reshape holds the heatmap size, input = 4 x that
_HEATMAP_STRIDE = 4


def _need(kv, keys, ltype):
    missing = [k for k in keys if k not in kv]
    if missing:
        raise KeyError(f'{ltype} without param {missing[0]}')


def _params(tokens):
    kv = {}
    for t in tokens:
        k, _, v = t.partition('=')
        k = int(k)
        if k <= -23300:  # array param: -23300-id=count,v1,v2... (kept apart from scalar ids)
            kv[('array', -k - 23300)] = [float(x) if '.' in x or 'e' in x else int(x) for x in v.split(',')[1:]]
        else:
            kv[k] = float(v) if ('.' in v or 'e' in v.lower()) and not v.lstrip('-').isdigit() else int(v)
    return kv


class _Blob:
    """Sequential reader of the ``.bin`` (ncnn ModelBinFromDataReader)."""

    def __init__(self, path):
        self.path = path
        with open(path, 'rb') as f:
            self.data = f.read()
        self.pos = 0

    def take(self, n, what):
        if self.pos + n > len(self.data):
            raise WeightsError(f'{self.path}: truncated while reading {what} ({len(self.data)} bytes); the file is '
                               'incomplete - copy it again')
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def load(self, count, typed, what):
        if not typed:
            return np.frombuffer(self.take(4 * count, what), '<f4').copy()
        tag = struct.unpack('<I', self.take(4, what))[0]
        if tag == _FP16_TAG:
            return np.frombuffer(self.take((2 * count + 3) // 4 * 4, what), '<f2')[:count].astype(np.float32)
        if tag == _INT8_TAG:
            raise WeightsError(f'{self.path}: int8-quantised weights are not supported ({what})')
        if tag in _FP32_TAGS:
            return np.frombuffer(self.take(4 * count, what), '<f4').copy()
        # any other non-zero flag: 256-entry float table + uint8 indices
        table = np.frombuffer(self.take(1024, what), '<f4')
        idx = np.frombuffer(self.take((count + 3) // 4 * 4, what), np.uint8)[:count]
        return table[idx].astype(np.float32)


def read_ncnn(param_path, bin_path, table=None, family=None):
    """ncnn ``.param`` + ``.bin`` (convs with BN folded) -> (ppdet state, info)."""
    family, table = archs.pick_table(table, family)  # ncnn exports exist of PP-TinyPose only: its default
    try:
        with open(param_path, 'rb') as f:
            lines = [ln.split() for ln in f.read().decode('utf-8').splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise WeightsError(f'{param_path}: not an ncnn .param file (binary content; a text file starting with '
                           '7767517 is expected); give the .param of an ncnn export') from None
    if not lines or lines[0] != ['7767517']:
        raise WeightsError(f'{param_path}: not an ncnn .param file (magic 7767517 missing)')
    if not osp.isfile(bin_path):
        raise WeightsError(f'{param_path}: the ncnn weights {osp.basename(bin_path)} are missing')
    blob = _Blob(bin_path)
    convs, arch = [], None
    for lineno, tokens in enumerate(lines[2:], 3):
        try:
            ltype, name = tokens[0], tokens[1]
            nin, nout = int(tokens[2]), int(tokens[3])
            kv = _params(tokens[4 + nin + nout:])
            if ltype in ('Convolution', 'ConvolutionDepthWise'):
                _need(kv, (0, 6), ltype)
        except (IndexError, ValueError, KeyError) as e:
            raise WeightsError(f'{param_path}: line {lineno} is not an ncnn layer ("{" ".join(tokens)[:60]}": '
                               f'{type(e).__name__}: {e}); the file is corrupt - export or copy it again') from None
        if ltype in ('Convolution', 'ConvolutionDepthWise'):
            out_c, kw = kv[0], kv.get(1, 1)
            kh = kv.get(11, kw)
            wsize = kv[6]
            if kv.get(8, 0):
                raise WeightsError(f'{param_path}: int8 convolution {name} is not supported')
            weight = blob.load(wsize, True, f'{name} weights')
            try:
                weight = weight.reshape(out_c, wsize // (out_c * kw * kh), kh, kw)
            except (ValueError, ZeroDivisionError):
                raise WeightsError(f'{param_path}: line {lineno}: convolution {name} declares {wsize} weights, which '
                                   f'do not fit {out_c} outputs of {kh}x{kw}; the file is corrupt - export or copy '
                                   'it again') from None
            bias = blob.load(out_c, False, f'{name} bias') if kv.get(5, 0) else None
            convs.append((weight, bias))
        elif ltype == 'Reshape' and arch is None and {0, 1, 2} <= set(kv):
            arch = archs.arch_from_input_size(kv[0] * _HEATMAP_STRIDE, kv[1] * _HEATMAP_STRIDE, family)
        elif ltype not in _WEIGHTLESS:
            raise WeightsError(f'{param_path}: layer {name} of type {ltype} is not supported ({table.description} '
                               'has only convolutions with weights)')
    if blob.pos != len(blob.data):
        raise WeightsError(f'{bin_path}: {len(blob.data) - blob.pos} bytes left after all layers; the .bin does not '
                           f'belong to {param_path}')
    return table.folded_state(convs, param_path), dict(format='ncnn', arch=arch, main_file=bin_path, family=family)
