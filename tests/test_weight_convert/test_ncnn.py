"""ncnn reader: the 2021 ncnn release -> our checkpoint -> heatmaps equal to the ncnn runtime and its fixture."""
import os.path as osp
import shutil

import numpy as np
import pytest

from weight_convert.errors import WeightsError
from weight_convert.formats import read_any

from ._helpers import NCNN, SIZES, argmax, heatmaps, ncnn_heatmaps


@pytest.mark.parametrize('size', SIZES)
def test_ncnn_matches_ncnn_runtime(shared_dir, converted, size):
    x = np.load(osp.join(shared_dir, f'fixtures/enhance/{size}_real_crops_b8.npy'))
    ours = heatmaps(converted['ncnn', size], x, f'pp_tinypose_{size}')
    stem = osp.join(shared_dir, NCNN, f'tinypose_{size}')
    ref = ncnn_heatmaps(stem + '.param', stem + '.bin', x)
    fixture = np.load(osp.join(shared_dir, f'fixtures/ncnn2021/{size}_real_crops_b8_heatmap_ncnn.npy'))
    for other in (ref, fixture):
        assert np.abs(ours - other).max() <= 2e-3
        assert (argmax(ours) == argmax(other)).all()


@pytest.mark.parametrize('size', SIZES)
def test_arch_from_output_reshape(shared_dir, size):
    _, info = read_any(osp.join(shared_dir, NCNN, f'tinypose_{size}.param'))
    assert info['format'] == 'ncnn' and info['arch'] == f'pp_tinypose_{size}'


def test_truncated_bin(shared_dir, tmp_path):
    stem = osp.join(shared_dir, NCNN, 'tinypose_128x96')
    shutil.copy(stem + '.param', tmp_path / 't.param')
    data = open(stem + '.bin', 'rb').read()
    (tmp_path / 't.bin').write_bytes(data[:len(data) - 100])
    with pytest.raises(WeightsError, match='truncated'):
        read_any(str(tmp_path / 't.param'))


def test_bin_of_another_model(shared_dir, tmp_path):
    stem = osp.join(shared_dir, NCNN, 'tinypose_128x96')
    shutil.copy(stem + '.param', tmp_path / 't.param')
    (tmp_path / 't.bin').write_bytes(open(stem + '.bin', 'rb').read() + b'\0' * 8)
    with pytest.raises(WeightsError, match='8 bytes left'):
        read_any(str(tmp_path / 't.param'))


def test_not_ncnn(tmp_path):
    (tmp_path / 'x.param').write_text('hello\n')
    (tmp_path / 'x.bin').write_bytes(b'')
    with pytest.raises(WeightsError, match='magic 7767517'):
        read_any(str(tmp_path / 'x.param'))
