"""Inference networks: BN folding, channel-shuffle folding and the fused flip test against ppdet's numbers."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

from kpt_plugin.apis.models import (FlipFusedNet, HeatmapNet, build_pose_model, check_shuffle_inputs_nonnegative,
                                    fold_batchnorm, fold_channel_shuffles)


@pytest.fixture(scope='module')
def net(shared_dir, tmp_path_factory):
    from weight_convert.convert import convert
    from kpt_plugin.zoo import get_config_path
    out = str(tmp_path_factory.mktemp('ckpt') / '128x96.pth')
    convert(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams'), out, 'PP-TinyPose_128x96')
    return HeatmapNet(build_pose_model(get_config_path('PP-TinyPose_128x96'), out)).eval()


@pytest.fixture(scope='module')
def crops(shared_dir):
    return torch.from_numpy(np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8.npy'))[:4])


def test_fold_batchnorm_removes_every_bn_and_keeps_outputs(net, crops, shared_dir):
    folded = copy.deepcopy(net)
    assert fold_batchnorm(folded) == 268  # every BN of PP-TinyPose (ppdet state dict: 268 BN)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        got = folded(crops).numpy()
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8_heatmap_paddle.npy'))[:4]
    assert np.abs(got - paddle).max() <= 1e-5


def test_fold_channel_shuffles_is_exact(net, crops):
    assert check_shuffle_inputs_nonnegative(net, torch.randn(2, 3, 128, 96) * 4) >= 0
    folded = copy.deepcopy(net)
    with pytest.raises(ValueError, match='fold_batchnorm'):
        fold_channel_shuffles(folded)
    fold_batchnorm(folded)
    assert fold_channel_shuffles(folded) == 48
    with torch.no_grad():
        assert (folded(crops) - net(crops)).abs().max() <= 1e-5


def test_flip_fused_equals_ppdet_flip_test(net, shared_dir):
    """ppdet's flip test (flip back, swap pairs, shift right one column, average) on its own eval inputs."""
    raw = np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results', '128x96_coco_flip_raw.npz'))
    with torch.no_grad():
        got = FlipFusedNet(net)(torch.from_numpy(raw['inputs'][:4])).numpy()
    assert np.abs(got - raw['heatmaps'][:4]).max() <= 1e-5
