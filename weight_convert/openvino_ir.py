"""OpenVINO IR (``model.xml`` + ``model.bin``; fp16/fp32 constants, BatchNorm folded into each conv + bias Add).

Side files, when present: ``model.mapping`` (IR layer -> Paddle framework names) and ``model.pdiparams.info``
(framework -> structured names). The convs are assigned to slots by :mod:`weight_convert.matcher`. The family comes
from the input shape (a size only one arch has) or the number of convs.

Only weights are read: activation constants are the model code's. PicoDet's fp16 IR stores Paddle's hard-sigmoid
slope 1/6 as fp16 (0.1666259765625) and dropped the ``+1e-9`` of the score; our modules keep ppdet's 0.1666667 and
the ``1e-9``, so the converted model has ppdet's semantics. A hard-sigmoid that is not Paddle's default (slope 1/6
up to fp16 rounding, offset 0.5) is refused: the model code could not reproduce it.
"""
import collections
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np

from . import archs
from .errors import WeightsError
from .matcher import match_graph_convs
from .paddle_inference import load_info_table, read_deploy_config

__all__ = ['read_openvino']

_OV_DTYPES = {'f16': np.float16, 'f32': np.float32, 'f64': np.float64}
#: Paddle's F.hardsigmoid default; fp16 rounds the slope by up to 2^-14 relative
_HARDSIGMOID = (1 / 6, 0.5)


def _read_mapping(path):
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
        return {}  # names are a hint only; the data-flow matcher does without
    return out


class _Graph:
    """Layers, edges and constants of one IR."""

    def __init__(self, xml_path, bin_path):
        self.xml_path, self.bin_path = xml_path, bin_path
        try:
            root = ET.parse(xml_path).getroot()
            self.layers = {lay.get('id'): lay for lay in root.find('layers')}
            edges = [(e.get('from-layer'), e.get('from-port'), e.get('to-layer'), e.get('to-port'))
                     for e in root.find('edges')]
        except (ET.ParseError, TypeError, AttributeError) as e:
            raise WeightsError(f'{xml_path}: not an OpenVINO IR ({type(e).__name__}: {e})') from None
        with open(bin_path, 'rb') as f:
            self.blob = f.read()
        self.producer = {(t, tp): (fl, fp) for fl, fp, t, tp in edges}
        self.consumers = collections.defaultdict(list)
        for fl, fp, t, tp in edges:
            self.consumers[fl].append((t, tp))

    def in_ports(self, lid):
        inp = self.layers[lid].find('input')
        return [p.get('id') for p in inp] if inp is not None else []

    def source_of(self, lid, port_index=0):
        ports = self.in_ports(lid)
        return self.producer.get((lid, ports[port_index])) if len(ports) > port_index else None

    def port_dims(self, lid, section, idx=0):
        return [int(d.text) for d in list(self.layers[lid].find(section))[idx].findall('dim')]

    def const(self, lid, names):
        """Follow Convert/Reshape back to a Const; return its data (float32) and collect layer names."""
        lay = self.layers[lid]
        names.append(lay.get('name', ''))
        if lay.get('type') == 'Const':
            data = lay.find('data')
            dt = _OV_DTYPES.get(data.get('element_type'))
            if dt is None:
                raise WeightsError(f'{self.xml_path}: constant {lay.get("name")} has unsupported type '
                                   f'{data.get("element_type")}')
            off, size = int(data.get('offset')), int(data.get('size'))
            if off + size > len(self.blob):
                raise WeightsError(f'{self.bin_path}: truncated ({len(self.blob)} bytes, constant {lay.get("name")} '
                                   f'needs {off + size}); the file is incomplete - copy it again')
            dtype = np.dtype(dt).newbyteorder('<')
            return np.frombuffer(self.blob, dtype=dtype, count=size // dtype.itemsize, offset=off).astype(np.float32)
        if lay.get('type') in ('Convert', 'Reshape', 'Squeeze', 'Unsqueeze'):
            src = self.source_of(lid)
            if src:
                return self.const(src[0], names)
        raise WeightsError(f'{self.xml_path}: weights of a convolution come from a {lay.get("type")} layer '
                           f'({lay.get("name")}), not a constant; unsupported IR')


def _rt_names(lay):
    return [a.get('value') or '' for a in lay.iter('attribute') if a.get('name') == 'fused_names']


def _conv(g, lid, mapping):
    lay = g.layers[lid]
    names = [lay.get('name', '')] + _rt_names(lay)
    weight = g.const(g.source_of(lid, 1)[0], names).reshape(g.port_dims(lid, 'input', 1))
    if lay.get('type') == 'GroupConvolution':  # [G, O/G, I/G, kh, kw] -> [O, I/G, kh, kw]
        grp, og, ig, kh, kw = weight.shape
        weight = weight.reshape(grp * og, ig, kh, kw)
    bias = None
    for t, tp in g.consumers.get(lid, []):
        add = g.layers[t]
        if add.get('type') != 'Add':
            continue
        other = [p for p in g.in_ports(t) if p != tp]
        src = g.producer.get((t, other[0])) if other else None
        if src is None or g.layers[src[0]].get('type') not in ('Const', 'Convert'):
            continue
        names += [add.get('name', '')] + _rt_names(add)
        bias = g.const(src[0], names).reshape(-1)
        break
    names += [mapping.get(n, '') for n in list(names)]
    return dict(weight=weight, bias=bias, names=' '.join(names), layer=lid)


def _upstream_convs(g, conv, conv_ids):
    """Ids of the nearest convs upstream of ``conv`` (through the data input only)."""
    deps, stack, seen = set(), [g.source_of(conv['layer'])], set()
    while stack:
        src = stack.pop()
        if src is None or src[0] in seen:
            continue
        seen.add(src[0])
        if src[0] in conv_ids:
            deps.add(id(conv_ids[src[0]]))
            continue
        stack.extend(g.producer.get((src[0], p)) for p in g.in_ports(src[0]))
    return deps


def _check_hardsigmoid(g):
    """Every HardSigmoid is Paddle's default (what our modules compute); returns their ``(alpha, beta)``."""
    found = []
    for lid, lay in g.layers.items():
        if lay.get('type') != 'HardSigmoid':
            continue
        alpha, beta = (float(g.const(g.source_of(lid, i)[0], [])[0]) for i in (1, 2))
        if abs(alpha - _HARDSIGMOID[0]) > 2 ** -14 or beta != _HARDSIGMOID[1]:
            raise WeightsError(f'{g.xml_path}: {lay.get("name")} is hardsigmoid(alpha={alpha}, beta={beta}); the '
                               'models here compute Paddle\'s default (alpha 1/6, beta 0.5). Unsupported IR')
        found.append((alpha, beta))
    return found


def read_openvino(xml_path, bin_path, table=None, family=None):
    """OpenVINO IR with BN folded into each conv -> (ppdet state, info)."""
    g = _Graph(xml_path, bin_path)
    mapping = _read_mapping(osp.splitext(xml_path)[0] + '.mapping')
    convs = [_conv(g, lid, mapping) for lid, lay in g.layers.items()
             if lay.get('type') in ('Convolution', 'GroupConvolution')]
    conv_ids = {c['layer']: c for c in convs}
    for c in convs:
        c['deps'] = _upstream_convs(g, c, conv_ids)
    arch = None
    for lay in g.layers.values():
        if lay.get('type') == 'Parameter':
            shape = [int(s) if s.strip().lstrip('-').isdigit() else -1
                     for s in (lay.find('data').get('shape') or '').split(',')]
            if len(shape) == 4:
                arch = archs.arch_from_input_size(shape[3], shape[2], family)
    family = family or (archs.get_arch(arch).family if arch else None)
    family, table = archs.pick_table(table, family, conv_count=len(convs))
    hardsigmoid = _check_hardsigmoid(g)
    directory = osp.dirname(xml_path)
    state = match_graph_convs(table, convs, xml_path, load_info_table(directory, 'model'))
    cfg_arch, model_name = read_deploy_config(directory, family)
    return state, dict(format='openvino', arch=arch or cfg_arch, family=family, main_file=bin_path,
                       model_name=model_name, hardsigmoid=hardsigmoid)
