"""The plain-torch PP-TinyPose network against MMPose's model and PaddleDetection's heatmaps."""
import copy
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from kpt_plugin.inference.folding import FOLD_PLANS, fold_for_inference
from kpt_plugin.inference.litehrnet import PlainPoseModel
from kpt_plugin.inference.nets import HeatmapNet, build_inference_model, build_pose_model, released_arch
from kpt_plugin.zoo import get_config_path


@pytest.fixture(scope='module', params=['128x96', '256x192'])
def size(request):
    return request.param


@pytest.fixture(scope='module')
def models(size, enhance_ckpt):
    config, ckpt = get_config_path(f'PP-TinyPose_{size}'), enhance_ckpt(size)
    return build_inference_model(config, ckpt), build_pose_model(config, ckpt)


@pytest.fixture(scope='module')
def crops(size, shared_dir):
    return torch.from_numpy(np.load(osp.join(shared_dir, 'fixtures', 'enhance', f'{size}_real_crops_b8.npy'))[:4])


def test_released_config_builds_the_plain_net_with_mmpose_tensors(models, size):
    plain, mm = models
    assert isinstance(plain, PlainPoseModel) and plain.input_size == tuple(mm.cfg.codec['input_size'])
    ours, theirs = plain.state_dict(), mm.state_dict()
    assert list(ours) == list(theirs)  # same names in the same order: a checkpoint fits either
    assert all(ours[k].shape == theirs[k].shape and torch.equal(ours[k], theirs[k]) for k in ours)


def test_plain_net_gives_mmpose_heatmaps_bit_for_bit(models, crops, size, shared_dir):
    plain, mm = models
    with torch.no_grad():
        got, want = HeatmapNet(plain)(crops), HeatmapNet(mm)(crops)
    assert torch.equal(got, want)
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', f'{size}_real_crops_b8_heatmap_paddle.npy'))[:4]
    assert np.abs(got.numpy() - paddle).max() <= 1e-5


@pytest.mark.parametrize('runtime', sorted(FOLD_PLANS))
def test_folds_rewrite_the_plain_net_as_they_rewrite_mmposes(models, crops, runtime):
    plain, mm = models
    a = fold_for_inference(HeatmapNet(copy.deepcopy(plain)).eval(), runtime=runtime)
    b = fold_for_inference(HeatmapNet(copy.deepcopy(mm)).eval(), runtime=runtime)
    def leaves(net):
        return [type(m).__name__ for m in net.modules() if not list(m.children())]
    assert leaves(a) == leaves(b)  # the same rewrites happened (a rewrite that missed one net would differ here)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in a.modules())
    with torch.no_grad():
        assert torch.equal(a(crops), b(crops))


def test_other_configs_build_mmposes_model(tmp_path, enhance_ckpt):
    own = str(tmp_path / 'my_tinypose.py')  # a user's copy: anything may have been changed in it
    shutil.copy(get_config_path('PP-TinyPose_128x96'), own)
    assert released_arch(own) is None and released_arch(None) is None
    assert released_arch(get_config_path('PP-TinyPose_256x192')).input_size == (192, 256)
    model = build_inference_model(own, enhance_ckpt('128x96'))
    assert type(model).__name__ == 'TopdownPoseEstimator'


def test_checkpoint_without_bn_counters_loads(tmp_path, enhance_ckpt):
    """BN ``num_batches_tracked`` are not weights: a checkpoint without them loads (as MMPose's loader allows)."""
    from weight_convert.io import load_checkpoint
    ckpt = load_checkpoint(enhance_ckpt('128x96'), map_location='cpu')
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items() if not k.endswith('num_batches_tracked')}
    path = str(tmp_path / 'no_counters.pth')
    torch.save(ckpt, path)
    model = build_inference_model(get_config_path('PP-TinyPose_128x96'), path)
    assert isinstance(model, PlainPoseModel)
