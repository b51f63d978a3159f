"""The graph matcher: IR convs placed by the Paddle names left in the xml, or by data flow when there are none."""
import os.path as osp
import re
import shutil

import numpy as np
import pytest

from weight_convert.archs import get_arch
from weight_convert.errors import WeightsError
from weight_convert.formats import read_any
from weight_convert.matcher import match_graph_convs
from weight_convert.pdparams import read_pdparams

from ._helpers import IR


def test_ir_without_side_files_uses_names_in_xml(shared_dir, tmp_path):
    """No model.mapping / model.pdiparams.info: the batch_norm2d_K names left in the IR, by rank."""
    src = osp.join(shared_dir, IR, '256x192')
    for name in ('model.xml', 'model.bin'):
        shutil.copy(osp.join(src, name), tmp_path)
    state, info = read_any(str(tmp_path))
    assert info['arch'] == 'pp_tinypose_256x192'
    ref = read_pdparams(osp.join(shared_dir, 'fixtures/enhance/256x192_enhance_folded.pdparams'))
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


def test_ir_without_names_uses_graph_order(shared_dir, tmp_path):
    """No model.mapping / .info and no Paddle names left in the xml: matched by dataflow + shapes."""
    src = osp.join(shared_dir, IR, '128x96')
    with open(osp.join(src, 'model.xml')) as f:
        xml = f.read()
    xml = re.sub(r'batch_norm2d_(\d+)', r'bnx\1', xml)
    xml = re.sub(r'conv2d_(\d+)\.w_0', r'cvx\1', xml)
    (tmp_path / 'model.xml').write_text(xml)
    shutil.copy(osp.join(src, 'model.bin'), tmp_path / 'model.bin')
    state, _ = read_any(str(tmp_path))
    ref = read_pdparams(osp.join(shared_dir, 'fixtures/enhance/128x96_enhance_folded.pdparams'))
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


def test_convs_that_fit_no_slot_order_name_the_first_bad_one():
    table = get_arch('pp_tinypose_128x96').slots
    convs = [dict(weight=np.zeros(s.shape, np.float32), bias=None, names='', deps=set()) for s in table]
    convs[5]['weight'] = np.zeros((7, 7, 1, 1), np.float32)
    with pytest.raises(WeightsError, match=r'conv #5 has weight shape \(7, 7, 1, 1\)'):
        match_graph_convs(table, convs, 'graph')
