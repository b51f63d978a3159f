"""Round trip .pth -> .pdparams -> .pth, the paddle.save-compatible writer, and the CLI."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from kpt_plugin.cli import main
from weight_convert.convert import convert, export_pdparams, paddle_framework_names
from weight_convert.pdparams import STRUCTURED_KEY, read_pdparams

IR = 'weights/pp_tinypose_enhance_openvino_fp16'


@pytest.fixture(scope='module')
def ir_pth(shared_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('rt') / 'ir.pth')
    convert(osp.join(shared_dir, IR, '256x192'), out)
    return out


def test_round_trip_bit_identical(ir_pth, tmp_path):
    pd = str(tmp_path / 'x.pdparams')
    info = export_pdparams(ir_pth, pd)
    assert info['arch'] == 'PP-TinyPose_256x192'  # read back from the checkpoint meta
    back = str(tmp_path / 'back.pth')
    meta = convert(pd, back, arch='PP-TinyPose_256x192')
    assert meta['source_format'] == 'pdparams'
    a = torch.load(ir_pth, map_location='cpu', weights_only=True)['state_dict']
    b = torch.load(back, map_location='cpu', weights_only=True)['state_dict']
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_pdparams_layout_matches_paddle_save(shared_dir, ir_pth, tmp_path):
    """Same keys, order, framework-name table and numpy arrays as a real paddle.save of TinyPose."""
    pd = str(tmp_path / 'x.pdparams')
    export_pdparams(ir_pth, pd)
    with open(pd, 'rb') as f:
        data = f.read()
    assert data[:2] == b'\x80\x04'  # pickle protocol 4, like paddle.save
    assert b'numpy.core.multiarray' in data and b'numpy._core' not in data  # loadable by numpy 1.x and 2.x
    ours = pickle.loads(data)  # noqa: S301 - our own file
    from kpt_plugin.safe_pickle import safe_load
    ref = safe_load(osp.join(shared_dir, 'fixtures/random/128x96_randomized.pdparams'))  # numbered from 0
    assert list(ours) == list(ref)
    assert ours[STRUCTURED_KEY] == ref[STRUCTURED_KEY]
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == ref[k].shape
               for k, v in ours.items() if k != STRUCTURED_KEY)
    assert paddle_framework_names()['final_conv.bias'] == 'conv2d_268.b_0'
    assert set(read_pdparams(pd)) == set(ref) - {STRUCTURED_KEY}


def test_cli_convert_and_back(shared_dir, tmp_path, capsys):
    out = str(tmp_path / 'ncnn.pth')
    src = osp.join(shared_dir, 'weights/pp_tinypose_2021_ncnn_fp16/tinypose_128x96.param')
    assert main(['convert', src, '-o', out]) == 0
    assert 'ncnn, PP-TinyPose_128x96' in capsys.readouterr().out
    assert main(['convert', out, '--to', 'pdparams', '-o', str(tmp_path / 'x.pdparams')]) == 0
    assert osp.isfile(tmp_path / 'x.pdparams')


def test_cli_errors_are_one_line(shared_dir, tmp_path, capsys):
    rc = main(['convert', osp.join(shared_dir, IR, '256x192'), '--arch', 'PP-TinyPose_128x96',
               '-o', str(tmp_path / 'x.pth')])
    err = capsys.readouterr().err
    assert rc == 2 and 'PP-TinyPose_256x192' in err and 'Traceback' not in err
    rc = main(['convert', str(tmp_path / 'missing'), '-o', str(tmp_path / 'y.pth')])
    assert rc == 2 and 'no such file' in capsys.readouterr().err
