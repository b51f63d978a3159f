import os.path as osp

import numpy as np
import pytest
import torch

import kpt_plugin  # noqa: F401
from kpt_plugin.codecs.pp_heatmap import PPTinyPoseHeatmap, ppdet_dark_targets, ppdet_decode
from mmpose.registry import KEYPOINT_CODECS, MODELS

SIZES = ('128x96', '256x192')


def _load(shared_dir, *parts):
    return np.load(osp.join(shared_dir, 'fixtures', *parts))


@pytest.mark.parametrize('size', SIZES)
def test_decode_matches_ppdet_on_real_heatmaps(shared_dir, size):
    ref = _load(shared_dir, 'enhance', f'{size}_real_crops_b8_decode_reference.npz')
    preds, maxvals = ppdet_decode(ref['heatmaps'], ref['center'], ref['scale'])
    assert np.abs(preds - ref['keypoints']).max() <= 1e-3
    assert np.abs(maxvals - ref['maxvals']).max() <= 1e-5


@pytest.mark.parametrize('size', SIZES)
def test_decode_matches_ppdet_on_random_heatmaps_with_edge_cases(shared_dir, size):
    ref = _load(shared_dir, 'random', f'{size}_decode_reference.npz')
    hm = ref['heatmaps']
    assert (ref['maxvals'] <= 0).sum() > 0, 'fixture should hold non-positive maxima'
    preds, maxvals = ppdet_decode(hm, ref['center'], ref['scale'])
    assert np.abs(preds - ref['keypoints']).max() <= 2e-2
    assert np.abs(maxvals - ref['maxvals']).max() <= 1e-5
    preds, maxvals = ppdet_decode(hm, ref['center'], ref['scale'], use_dark=False)
    assert np.abs(preds - ref['keypoints_nodark']).max() <= 2e-2
    assert np.abs(maxvals - ref['maxvals_nodark']).max() <= 1e-5
    assert np.allclose(np.mean(maxvals, axis=1), ref['score'], atol=1e-6)


def test_decode_does_not_modify_input(shared_dir):
    ref = _load(shared_dir, 'random', '128x96_decode_reference.npz')
    hm = ref['heatmaps'].copy()
    ppdet_decode(hm, ref['center'], ref['scale'])
    assert np.array_equal(hm, ref['heatmaps'])


def test_non_positive_peak_decodes_to_heatmap_origin():
    # ppdet zeroes coordinates of joints whose maximum is <= 0 (MMPose's own codecs return -1)
    codec = PPTinyPoseHeatmap(input_size=(96, 128), heatmap_size=(24, 32), sigma=1)
    hm = -np.ones((2, 32, 24), np.float32)
    hm[0, 10, 7] = -0.5
    hm[1, 20, 5] = 0.7
    kpts, scores = codec.decode(hm)
    assert kpts.shape == (1, 2, 2)
    assert np.array_equal(kpts[0, 0], [0, 0])
    assert np.allclose(scores[0], [-0.5, 0.7])
    assert np.allclose(kpts[0, 1], [5 * 4, 20 * 4], atol=4)  # DARK moves it below one heatmap pixel


@pytest.mark.parametrize('size', SIZES)
def test_codec_decode_is_ppdet_decode_in_input_space(shared_dir, size):
    ref = _load(shared_dir, 'enhance', f'{size}_real_crops_b8_decode_reference.npz')
    h, w = ref['heatmaps'].shape[2:]
    codec = KEYPOINT_CODECS.build(
        dict(type='PPTinyPoseHeatmap', input_size=(w * 4, h * 4), heatmap_size=(w, h), sigma=1))
    for i in range(2):
        kpts, scores = codec.decode(ref['heatmaps'][i])
        scale = ref['scale'][i] * 200
        # non-UDP back-projection of input pixels: x_img = center + (x_in / input_w - 0.5) * scale_w
        img = ref['center'][i] + (kpts[0] / np.array([w * 4, h * 4]) - 0.5) * scale
        assert np.abs(img - ref['keypoints'][i]).max() <= 1e-3
        assert np.allclose(scores[0], ref['maxvals'][i, :, 0])


def _ppdet_targets_reference(joints, vis, hm_w, hm_h, input_w, input_h, sigma):
    # straight transcription of ToHeatmapsTopDown_DARK's arithmetic, float32 as on numpy 1.x
    target = np.zeros((len(joints), hm_h, hm_w), np.float32)
    weight = vis.astype(np.float32).copy()
    stride = np.array([input_w / hm_w, input_h / hm_h])
    x = np.arange(hm_w, dtype=np.float32)
    y = np.arange(hm_h, dtype=np.float32)[:, None]
    for k, (jx, jy) in enumerate(joints):
        mx, my = np.float32(jx / stride[0]), np.float32(jy / stride[1])
        if int(mx - 3 * sigma) >= hm_w or int(my - 3 * sigma) >= hm_h or int(mx + 3 * sigma + 1) < 0 \
                or int(my + 3 * sigma + 1) < 0:
            weight[k] = 0
            continue
        if weight[k] > 0.5:
            target[k] = np.exp(-((x - mx)**2 + (y - my)**2) / np.float32(2 * sigma**2))
    return target, weight


@pytest.mark.parametrize('sigma,input_size', [(1, (96, 128)), (2, (192, 256))])
def test_encode_dark_targets(sigma, input_size):
    w, h = input_size
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(-10, w + 10, (30, 1)), rng.uniform(-10, h + 10, (30, 1))], 1)
    joints[:3] = [[-4.5 * 4, 10], [w + 40, 5], [-17.0, -16.9]]  # near/outside the window edges
    vis = (rng.uniform(size=30) > 0.2).astype(np.float32)
    codec = PPTinyPoseHeatmap(input_size=input_size, heatmap_size=(w // 4, h // 4), sigma=sigma)
    enc = codec.encode(joints[None].astype(np.float32), vis[None])
    ref_t, ref_w = _ppdet_targets_reference(joints.astype(np.float32), vis, w // 4, h // 4, w, h, sigma)
    assert enc['heatmaps'].dtype == np.float32
    assert np.array_equal(enc['keypoint_weights'][0], ref_w)
    assert np.abs(enc['heatmaps'] - ref_t).max() <= 1e-7
    # untruncated Gaussian: non-zero far from the peak, exactly 1 only where the joint hits a pixel
    k = int(np.argmax(ref_w))
    assert (enc['heatmaps'][k] > 0).sum() > (6 * sigma + 1)**2


def test_loss_is_ppdet_keypoint_mse():
    # ppdet KeyPointMSELoss: sum_j 0.5 * mean((pred_j*w_j - gt_j*w_j)^2) / num_joints
    loss = MODELS.build(dict(type='KeypointMSELoss', use_target_weight=True, loss_weight=0.5))
    torch.manual_seed(0)
    pred, gt = torch.rand(4, 17, 8, 6), torch.rand(4, 17, 8, 6)
    w = (torch.rand(4, 17) > 0.3).float()
    ref = sum(0.5 * torch.mean((pred[:, j].reshape(4, -1) * w[:, j:j + 1] - gt[:, j].reshape(4, -1) * w[:, j:j + 1])**2)
              for j in range(17)) / 17
    assert torch.allclose(loss(pred, gt, w), ref, atol=1e-7)
