"""PicoDet readers: each form detected as PicoDet, the export constants checked, names or data flow, refusals."""
import json
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch

from weight_convert import openvino_ir
from weight_convert.archs import get_arch
from weight_convert.convert import convert, export_pdparams
from weight_convert.errors import WeightsError
from weight_convert.families.picodet import to_mmpose
from weight_convert.formats import detect, read_any
from weight_convert.matcher import assign_by_dataflow
from weight_convert.pdparams import read_pdparams

from ._helpers import write_pdparams
from ._picodet import IR, PIR, arch_of, folded_pdparams, unfold_bn, write_deploy_dir


def _same_network(state, shared_dir, size):
    """``state`` (ppdet names, any form) holds exactly the folded fixture's tensors."""
    got, ref = to_mmpose(state), to_mmpose(read_pdparams(folded_pdparams(shared_dir, size)))
    ref.pop('bbox_head.distribution_project.project')  # a buffer: graph formats hold none, the converter adds it
    return set(got) == set(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)


def _ir_copy(shared_dir, size, tmp_path, edit=None):
    stem = osp.join(shared_dir, IR, str(size), f'picodet_s_{size}_lcnet_pedestrian')
    xml = open(stem + '.xml').read()
    (tmp_path / 'model.xml').write_text(edit(xml) if edit else xml)
    shutil.copy(stem + '.bin', tmp_path / 'model.bin')
    return str(tmp_path)


def _pir_copy(shared_dir, size, tmp_path, shape=None, deploy_config=True):
    src = osp.join(shared_dir, PIR, str(size))
    prog = json.load(open(osp.join(src, 'model.json')))
    for op in prog['program']['regions'][0]['blocks'][0]['ops']:
        for a in op.get('A', []) if op.get('#') == '1.data' and shape else []:
            if a.get('N') == 'shape' and len(a['AT']['D']) == 4:
                a['AT']['D'] = shape
    (tmp_path / 'model.json').write_text(json.dumps(prog))
    shutil.copy(osp.join(src, 'model.pdiparams'), tmp_path)
    if deploy_config:
        shutil.copy(osp.join(src, 'infer_cfg.yml'), tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize('size', [192, 320])
def test_ir_and_pir_read_as_picodet(shared_dir, size):
    for sub, fmt in ((IR, 'openvino'), (PIR, 'paddle_pir')):
        state, info = read_any(osp.join(shared_dir, sub, str(size)))
        assert (info['format'], info['family'], info['arch']) == (fmt, 'picodet', arch_of(size))
        assert _same_network(state, shared_dir, size)
    # the Paddle 3 export: infer_cfg.yml says arch GFL (ppdet's name when the NMS is in the graph); the three
    # export constants (anchor points, strides, DFL projection) were checked against a SxS input and dropped
    assert info['constants'] == ['anchor_points', 'distribution_project', 'stride_tensor']


def test_pir_family_and_size_without_any_hint(shared_dir, tmp_path):
    """Dynamic input, no deploy config: the conv count says PicoDet, the anchors say 320."""
    state, info = read_any(_pir_copy(shared_dir, 320, tmp_path, shape=[-1, 3, -1, -1], deploy_config=False))
    assert (info['family'], info['arch']) == ('picodet', arch_of(320)) and _same_network(state, shared_dir, 320)


def test_pir_anchors_of_another_size_are_refused(shared_dir, tmp_path):
    with pytest.raises(WeightsError, match='eager_tmp_0.*do not belong|do not belong.*eager_tmp_0'):
        read_any(_pir_copy(shared_dir, 192, tmp_path, shape=[-1, 3, 320, 320], deploy_config=False))


def test_ir_without_paddle_names_matched_by_data_flow(shared_dir, tmp_path):
    def strip(xml):
        return re.sub(r'conv2d_(\d+)\.w_0', r'cvx\1', re.sub(r'batch_norm2d_(\d+)', r'bnx\1', xml))
    state, info = read_any(_ir_copy(shared_dir, 192, tmp_path, strip))
    assert info['family'] == 'picodet' and _same_network(state, shared_dir, 192)


def test_shapes_and_order_alone_would_swap_parallel_branches(shared_dir):
    """Why the table lists upstream convs: PicoDet's head levels and its two top convs share every shape."""
    stem = osp.join(shared_dir, IR, '192', 'picodet_s_192_lcnet_pedestrian')
    g = openvino_ir._Graph(stem + '.xml', stem + '.bin')
    convs = [openvino_ir._conv(g, lid, {}) for lid, lay in g.layers.items()
             if lay.get('type') in ('Convolution', 'GroupConvolution')]
    ids = {c['layer']: c for c in convs}
    for c in convs:
        c['deps'] = openvino_ir._upstream_convs(g, c, ids)
    table = get_arch(arch_of(192)).slots
    exact = assign_by_dataflow(table, convs)
    loose = type(table).__new__(type(table))
    loose.__dict__.update(table.__dict__, slots=tuple(s._replace(deps=None) for s in table.slots))
    swapped = {table[i].conv for i, (a, b) in enumerate(zip(exact, assign_by_dataflow(loose, convs))) if a is not b}
    assert 'neck.first_top_conv.dwconv' in swapped and 'head.conv_feat.cls_conv_dw0.0.conv' in swapped
    # the exact order is the named one (batch_norm2d_K on every BN conv)
    names = [re.search(r'batch_norm2d_(\d+)\.', c['names']) for c in exact]
    assert [int(m.group(1)) for m in names if m] == [s.bn_k for s in table.with_norm]


def test_ir_hardsigmoid_other_than_paddles_is_refused(shared_dir, monkeypatch):
    monkeypatch.setattr(openvino_ir, '_HARDSIGMOID', (0.2, 0.5))  # e.g. an ONNX-default HardSigmoid
    with pytest.raises(WeightsError, match=r'hardsigmoid\(alpha=0.1666'):
        read_any(osp.join(shared_dir, IR, '192'))


def test_contradicting_arch_refused(shared_dir, tmp_path):
    with pytest.raises(WeightsError, match='picodet_s_lcnet_pedestrian_192'):
        convert(osp.join(shared_dir, IR, '192'), str(tmp_path / 'x.pth'), arch='picodet_s_lcnet_pedestrian_320')
    with pytest.raises(WeightsError, match="a picodet model's, not pp_tinypose_128x96's"):
        convert(folded_pdparams(shared_dir, 192), str(tmp_path / 'x.pth'), arch='pp_tinypose_128x96')
    with pytest.raises(WeightsError, match='98 conv and 82 batch-norm layers found; PP-TinyPose'):
        convert(osp.join(shared_dir, PIR, '192'), str(tmp_path / 'x.pth'), arch='PP-TinyPose_128x96')
    assert not (tmp_path / 'x.pth').exists()


@pytest.mark.parametrize('info, offset', [(True, 0), (False, 0), (False, 112)])
def test_deploy_dir_by_info_or_creation_order(shared_dir, tmp_path, info, offset):
    """The Paddle 2.x deploy layout (tiny_pose README): names by ``.pdiparams.info`` (predictors by their alias),
    else by creation-order rank, also when Paddle's numbering did not start at 0."""
    table = get_arch(arch_of(192)).slots
    real = unfold_bn(read_pdparams(folded_pdparams(shared_dir, 192)), table)
    (tmp_path / 'd').mkdir()
    write_deploy_dir(tmp_path / 'd', real, table, 192, info=info, offset=offset)
    assert detect(str(tmp_path))['format'] == 'paddle_legacy'
    state, meta = read_any(str(tmp_path))
    assert (meta['family'], meta['arch'], meta['constants']) == (
        'picodet', arch_of(192), ['anchor_points', 'distribution_project', 'stride_tensor'])
    got, ref = to_mmpose(state), to_mmpose(real)
    ref.pop('bbox_head.distribution_project.project')
    assert set(got) == set(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)


def test_real_bn_pdparams_with_nan_refused(shared_dir, tmp_path):
    table = get_arch(arch_of(320)).slots
    real = unfold_bn(read_pdparams(folded_pdparams(shared_dir, 320)), table)
    real['neck.conv_t.convs.1.bn._variance'][5] = np.nan
    src = str(tmp_path / 'picodet_s_320_lcnet_pedestrian.pdparams')
    write_pdparams(src, real)
    with pytest.raises(WeightsError, match=r'neck\.conv_t\.convs\.1\.bn\._variance holds 1 non-finite'):
        convert(src, str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_pdparams_family_from_names_size_from_name_or_default(shared_dir, tmp_path):
    shutil.copy(folded_pdparams(shared_dir, 192), tmp_path / 'weights.pdparams')
    meta = convert(str(tmp_path / 'weights.pdparams'), str(tmp_path / 'w.pth'))
    assert (meta['family'], meta['arch'], meta['arch_inferred']) == ('picodet', arch_of(320), True)
    meta = convert(folded_pdparams(shared_dir, 192), str(tmp_path / 'n.pth'))
    assert (meta['arch'], meta['arch_inferred']) == (arch_of(192), False)
    bad = read_pdparams(folded_pdparams(shared_dir, 192))
    bad['head.distribution_project.project'] = np.arange(8, dtype=np.float32) * 2
    write_pdparams(str(tmp_path / 'bad_192.pdparams'), bad)
    with pytest.raises(WeightsError, match='distribution_project.project holds'):
        convert(str(tmp_path / 'bad_192.pdparams'), str(tmp_path / 'b.pth'))


def test_export_pdparams_is_ppdets_state_dict(shared_dir, tmp_path):
    """IR -> ``.pdparams`` that ppdet loads: the folded fixture's keys (aliases, unused scales, projection)."""
    info = export_pdparams(osp.join(shared_dir, IR, '192'), str(tmp_path / 'x.pdparams'))
    assert info['arch'] == arch_of(192)
    got, ref = read_pdparams(tmp_path / 'x.pdparams'), read_pdparams(folded_pdparams(shared_dir, 192))
    assert set(got) == set(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)
    # and back, through our checkpoint: the same tensors
    convert(str(tmp_path / 'x.pdparams'), str(tmp_path / 'a.pth'), arch=arch_of(192))
    export_pdparams(str(tmp_path / 'a.pth'), str(tmp_path / 'y.pdparams'))
    again = read_pdparams(tmp_path / 'y.pdparams')
    assert list(again) == list(got) and all(np.array_equal(again[k], got[k]) for k in got)
    sd = torch.load(tmp_path / 'a.pth', weights_only=True)
    assert sd['meta']['family'] == 'picodet' and 'bbox_head.head_cls_list.3.bias' in sd['state_dict']
    state, info = read_any(str(tmp_path / 'a.pth'))
    assert (info['format'], info['family'], info['arch']) == ('pth', 'picodet', arch_of(192)) and set(state) == set(ref)
