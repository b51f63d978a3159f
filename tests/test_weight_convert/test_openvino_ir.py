"""OpenVINO IR reader: the enhance IR -> our checkpoint -> heatmaps equal to the OpenVINO runtime / folded fixture."""
import os.path as osp
import shutil

import numpy as np
import pytest

from weight_convert.errors import WeightsError
from weight_convert.formats import read_any
from weight_convert.openvino_ir import read_openvino
from weight_convert.pdparams import read_pdparams

from ._helpers import IR, SIZES, argmax, heatmaps, openvino_heatmaps


@pytest.mark.parametrize('size', SIZES)
def test_openvino_ir_matches_openvino_runtime(shared_dir, converted, size):
    x = np.load(osp.join(shared_dir, f'fixtures/enhance/{size}_real_crops_b8.npy'))
    ours = heatmaps(converted['ir', size], x, f'pp_tinypose_{size}')
    ref = openvino_heatmaps(osp.join(shared_dir, IR, size, 'model.xml'), x)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 2e-3
    assert (argmax(ours) == argmax(ref)).all()


@pytest.mark.parametrize('size', SIZES)
def test_ir_equals_folded_pdparams(shared_dir, size):
    state, info = read_any(osp.join(shared_dir, IR, size))
    assert info['format'] == 'openvino' and info['arch'] == f'pp_tinypose_{size}'
    ref = read_pdparams(osp.join(shared_dir, f'fixtures/enhance/{size}_enhance_folded.pdparams'))
    assert set(state) == set(ref)
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


def test_reader_called_directly(shared_dir):
    src = osp.join(shared_dir, IR, '128x96')
    state, info = read_openvino(osp.join(src, 'model.xml'), osp.join(src, 'model.bin'))
    assert info['main_file'].endswith('model.bin') and len(state) == 1342


def test_truncated_bin(shared_dir, tmp_path):
    src = osp.join(shared_dir, IR, '128x96')
    shutil.copy(osp.join(src, 'model.xml'), tmp_path)
    data = open(osp.join(src, 'model.bin'), 'rb').read()
    (tmp_path / 'model.bin').write_bytes(data[:len(data) // 2])
    with pytest.raises(WeightsError, match='truncated'):
        read_any(str(tmp_path))


def test_not_an_ir(tmp_path):
    (tmp_path / 'model.xml').write_text('<net><layers>')
    (tmp_path / 'model.bin').write_bytes(b'')
    with pytest.raises(WeightsError, match='not an OpenVINO IR'):
        read_any(str(tmp_path))
