"""Inference networks: BN folding, channel-shuffle folding and the fused flip test against ppdet's numbers."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

from kpt_plugin.inference.nets import FlipFusedNet, HeatmapNet, build_pose_model
from kpt_plugin.inference.folding import (check_shuffle_inputs_nonnegative,
                                    fold_batchnorm, fold_channel_shuffles, fold_for_inference, fold_fuse_layers,
                                    fold_stem)


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


@pytest.mark.parametrize('fold_shuffles', [True, False])
def test_fold_fuse_layers_is_exact(net, crops, shared_dir, fold_shuffles):
    """Regrouped fuse sums (doubling as a conv scale, nested upsampling) give the model's (and ppdet's) maps."""
    folded = copy.deepcopy(net)
    with pytest.raises(ValueError, match='fold_batchnorm'):
        fold_fuse_layers(copy.deepcopy(net))
    fold_batchnorm(folded)
    if fold_shuffles:
        fold_channel_shuffles(folded)
    assert fold_fuse_layers(folded) == 8  # 2 + 4 + 2 multi-branch modules in the three stages
    with torch.no_grad():
        got = folded(crops)
        assert (got - net(crops)).abs().max() <= 1e-5
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8_heatmap_paddle.npy'))[:4]
    assert np.abs(got.numpy() - paddle).max() <= 1e-5


def test_fold_stem_is_exact(net, crops, shared_dir):
    """The stem without its Split and channel shuffle (absorbed by transition0's depthwise + 1x1 convs)."""
    folded = copy.deepcopy(net)
    with pytest.raises(ValueError, match='fold_batchnorm'):
        fold_stem(folded.backbone)
    fold_batchnorm(folded)
    assert fold_stem(folded.backbone) is True
    assert not any(type(m).__name__ == 'Stem' for m in folded.modules())
    with torch.no_grad():
        got = folded(crops)
        assert (got - net(crops)).abs().max() <= 1e-5
    assert fold_stem(folded.backbone) is False  # already folded: nothing to do


@pytest.mark.parametrize('runtime', ['torch', 'onnxruntime', 'openvino'])
def test_fold_for_inference_matches_paddle(net, crops, shared_dir, runtime):
    from mmpose.models.backbones.litehrnet import ShuffleUnit
    folded = fold_for_inference(copy.deepcopy(net), runtime=runtime)
    names = {type(m).__name__ for m in folded.modules()}
    assert {'_FusedShuffleUnit', '_FoldedFuseModule', '_FoldedStem'} <= names
    assert 'BatchNorm2d' not in names
    units = [m for m in folded.modules() if type(m).__name__ == '_FusedShuffleUnit']
    kept = [m for m in folded.modules() if isinstance(m, ShuffleUnit) and m.stride == 1]
    halves = sorted({u[0].in_channels // 2 for u in units})
    if runtime == 'openvino':
        # only the units whose halves are not whole 16-channel blocks are rewritten; all with a 2-group conv1
        assert halves == [20, 40] and all(u[0].groups == 2 for u in units)
        assert len(kept) == 48 - len(units) > 0
        assert {k.branch2[0].conv.in_channels for k in kept} == {80, 160}
    else:
        assert halves == [20, 40, 80, 160] and not kept
        assert all(u[0].groups == (2 if u[0].in_channels % 32 == 0 else 1) for u in units)
    with torch.no_grad():
        got = folded(crops).numpy()
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8_heatmap_paddle.npy'))[:4]
    assert np.abs(got - paddle).max() <= 1e-5


@pytest.mark.parametrize('flip', [False, True])
def test_torch_backend_traced_equals_eager(net, crops, flip):
    """The torch path's steady state: eager for a shape's first ``trace_after - 1`` batches, then traced + frozen
    (the default waits longer, see ``TorchBackend.TRACE_AFTER``; the rule is the same)."""
    from kpt_plugin.inference.runtime.torch import TorchBackend
    pose = type('Pose', (), {})()
    pose.backbone, pose.head = copy.deepcopy(net.backbone), type('Head', (), {})()
    pose.head.final_layer = copy.deepcopy(net.final_layer)
    backend = TorchBackend(pose, 'cpu', flip=flip, trace_after=2, fold_after_s=0)
    ref = FlipFusedNet(net) if flip else net
    with torch.no_grad():
        want = ref(crops[:2]).numpy()
    outs = [backend(crops[:2].numpy()) for _ in range(3)]
    assert isinstance(backend._traced[tuple(crops[:2].shape)], torch.jit.ScriptModule)
    for got in outs:
        assert np.abs(got - want).max() <= 1e-5


def test_flip_fused_equals_ppdet_flip_test(net, shared_dir):
    """ppdet's flip test (flip back, swap pairs, shift right one column, average) on its own eval inputs."""
    raw = np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results', '128x96_coco_flip_raw.npz'))
    with torch.no_grad():
        got = FlipFusedNet(net)(torch.from_numpy(raw['inputs'][:4])).numpy()
    assert np.abs(got - raw['heatmaps'][:4]).max() <= 1e-5


def test_fold_for_inference_unknown_runtime(net):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        fold_for_inference(copy.deepcopy(net), runtime='tensorrt')
