"""The converter: checkpoint contents and meta, round trip .pth -> .pdparams -> .pth, and what it refuses."""
import os.path as osp

import numpy as np
import pytest
import torch

import weight_convert
from weight_convert.convert import CONVERTER_VERSION, convert, export_pdparams, reference_state, sha256sum
from weight_convert.errors import WeightsError
from weight_convert.pdparams import read_pdparams

from ._helpers import IR, write_pdparams


def test_round_trip_bit_identical(converted, tmp_path):
    pd = str(tmp_path / 'x.pdparams')
    info = export_pdparams(converted['ir', '256x192'], pd)
    assert info['arch'] == 'pp_tinypose_256x192'  # read back from the checkpoint meta
    back = str(tmp_path / 'back.pth')
    meta = convert(pd, back, arch='PP-TinyPose_256x192')  # the old spelling is an alias
    assert meta['source_format'] == 'pdparams' and meta['arch'] == 'pp_tinypose_256x192'
    a = torch.load(converted['ir', '256x192'], map_location='cpu', weights_only=True)['state_dict']
    b = torch.load(back, map_location='cpu', weights_only=True)['state_dict']
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_checkpoint_meta(shared_dir, converted):
    meta = torch.load(converted['ir', '256x192'], map_location='cpu', weights_only=True)['meta']
    assert meta['source_format'] == 'openvino' and meta['arch'] == 'pp_tinypose_256x192'
    assert meta['config'] == 'configs/pp_tinypose/td-hm_pp-tinypose_4xb128-420e_aic-coco-256x192.py'
    assert meta['source_sha256'] == sha256sum(osp.join(shared_dir, IR, '256x192', 'model.bin'))
    assert meta['converter_version'] == CONVERTER_VERSION and meta['arch_inferred'] is False
    assert 'model' not in meta


def test_state_dict_is_the_reference_layout(random_pdparams, tmp_path):
    meta = convert(random_pdparams, str(tmp_path / 'r.pth'))
    assert meta['arch'] == 'pp_tinypose_128x96' and meta['arch_inferred'] is False  # from the file name
    sd = torch.load(tmp_path / 'r.pth', map_location='cpu', weights_only=True)['state_dict']
    ref = reference_state('pp_tinypose_128x96')
    assert list(sd) == list(ref) and all(tuple(sd[k].shape) == ref[k] for k in sd)
    assert sd['backbone.stem.conv1.bn.num_batches_tracked'].dtype == torch.int64
    state = read_pdparams(random_pdparams)
    assert torch.equal(sd['head.final_layer.weight'], torch.from_numpy(state['final_conv.weight']))
    assert torch.equal(sd['backbone.stem.conv1.bn.running_var'],
                       torch.from_numpy(state['backbone.stem.conv1.norm._variance']))


def test_the_module_is_callable_as_convert(random_pdparams, tmp_path):
    assert weight_convert.convert.convert is convert and weight_convert.CONVERTER_VERSION == CONVERTER_VERSION
    meta = weight_convert.convert(random_pdparams, str(tmp_path / 'c.pth'), model='PP-TinyPose_128x96')
    assert meta['model'] == 'PP-TinyPose_128x96'


def test_no_size_anywhere_defaults_and_says_so(random_pdparams, tmp_path):
    import shutil
    shutil.copy(random_pdparams, tmp_path / 'weights.pdparams')
    meta = convert(str(tmp_path / 'weights.pdparams'), str(tmp_path / 'w.pth'))
    assert meta['arch'] == 'pp_tinypose_128x96' and meta['arch_inferred'] is True


def test_mismatched_weights_list_every_problem(random_pdparams, tmp_path):
    state = read_pdparams(random_pdparams)
    state.pop('backbone.stem.conv1.conv.weight')
    state['neck.extra.weight'] = np.zeros(3, np.float32)
    state['final_conv.weight'] = np.zeros((14, 40, 1, 1), np.float32)
    bad = tmp_path / 'bad.pdparams'
    write_pdparams(bad, state)
    with pytest.raises(WeightsError) as e:
        convert(str(bad), str(tmp_path / 'out.pth'))
    msg = str(e.value)
    assert 'neck.extra.weight' in msg and 'backbone.stem.conv1.conv.weight' in msg
    assert 'head.final_layer.weight: (14, 40, 1, 1)' in msg and 'PP-TinyPose' in msg
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_tensors_are_refused(random_pdparams, tmp_path, bad):
    state = read_pdparams(random_pdparams)
    state['backbone.stem.branch1.0.norm._variance'][3] = bad
    state['final_conv.bias'][0] = np.nan  # a later one: the message names the first
    src = tmp_path / 'nan_128x96.pdparams'
    write_pdparams(src, state)
    for call in (convert, export_pdparams):
        with pytest.raises(WeightsError) as e:
            call(str(src), str(tmp_path / 'out'))
        msg = str(e.value)
        assert str(src) in msg and 'backbone.stem.branch1.0.norm._variance' in msg and '1 non-finite' in msg
        assert 'final_conv' not in msg
    assert not (tmp_path / 'out').exists()


def test_ir_256_with_mismatching_arch_refused(shared_dir, tmp_path):
    with pytest.raises(ValueError, match='pp_tinypose_256x192'):
        convert(osp.join(shared_dir, IR, '256x192'), str(tmp_path / 'x.pth'), arch='PP-TinyPose_128x96')
    assert not (tmp_path / 'x.pth').exists()


def test_unknown_arch(random_pdparams, tmp_path):
    with pytest.raises(WeightsError, match='unknown arch'):
        convert(random_pdparams, str(tmp_path / 'x.pth'), arch='hrnet_w32')
