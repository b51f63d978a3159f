"""Geometry of the PP-TinyPose training transforms (ours and the MMPose ones the recipe reuses)."""
import math
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmpose.datasets.transforms import RandomFlip, RandomHalfBody, TopdownAffine

import kpt_plugin  # noqa: F401  (registers everything)
from kpt_plugin.datasets.transforms.pp_train_transforms import (PPDET_UPPER_BODY_PROB, PPAIDCutout,
                                                                PPRandomBBoxTransform)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FINETUNE_CFG = osp.join(REPO, 'configs', 'pp_tinypose', 'td-hm_pp-tinypose_1xb16-50e_custom-128x96.py')
COCO_UPPER = list(range(11))
COCO_LOWER = list(range(11, 17))
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def _results(num_kpts=17, w=200, h=100, seed=0):
    rng = np.random.RandomState(seed)
    kpts = np.stack([rng.uniform(10, w - 10, num_kpts), rng.uniform(10, h - 10, num_kpts)], -1)
    return dict(img=rng.randint(1, 255, (h, w, 3)).astype(np.uint8), img_shape=(h, w),
                keypoints=kpts[None].astype(np.float32), keypoints_visible=np.ones((1, num_kpts), np.float32),
                bbox_center=np.array([[w / 2, h / 2]], np.float32), bbox_scale=np.array([[80., 60.]], np.float32),
                flip_indices=COCO_FLIP[:num_kpts], upper_body_ids=COCO_UPPER, lower_body_ids=COCO_LOWER)


def test_random_flip_is_ppdet_flip():
    """x -> W - x - 1 for keypoints and box centre, left/right swapped, image mirrored."""
    res = _results()
    kpts, center, img = res['keypoints'].copy(), res['bbox_center'].copy(), res['img'].copy()
    out = RandomFlip(prob=1.0, direction='horizontal')(res)
    w = img.shape[1]
    assert np.array_equal(out['img'], img[:, ::-1])
    np.testing.assert_allclose(out['keypoints'][0], np.c_[w - 1 - kpts[0, COCO_FLIP, 0], kpts[0, COCO_FLIP, 1]])
    np.testing.assert_allclose(out['bbox_center'][0], [w - 1 - center[0, 0], center[0, 1]])


def _ppdet_half_body_choice(vis, prefer_upper):
    """ppdet's rule (RandomFlipHalfBodyTransform.halfbody_transform), written out."""
    upper = [i for i in COCO_UPPER if vis[i] > 0]
    lower = [i for i in COCO_LOWER if vis[i] > 0]
    if prefer_upper and len(upper) > 2:
        sel = upper
    else:
        sel = lower if len(lower) > 2 else upper
    return None if len(sel) < 2 else sel


@pytest.mark.parametrize('n_upper,n_lower', [(11, 6), (3, 6), (9, 0), (9, 2), (6, 3), (4, 5), (5, 4), (7, 2)])
@pytest.mark.parametrize('prefer_upper', [True, False])
def test_half_body_selection_matches_ppdet(n_upper, n_lower, prefer_upper, monkeypatch):
    vis = np.zeros(17, np.float32)
    vis[:n_upper] = 1
    vis[11:11 + n_lower] = 1
    if vis.sum() <= 8:
        pytest.fail('case must have more than 8 labelled joints')
    t = RandomHalfBody(min_total_keypoints=9, min_upper_keypoints=3, min_lower_keypoints=3, padding=1.5,
                       prob=1.0, upper_prioritized_prob=PPDET_UPPER_BODY_PROB)
    # RandomHalfBody draws rand() for `prob` then rand() for the upper preference
    draws = iter([0.0, 0.0 if prefer_upper else 0.999])
    monkeypatch.setattr(np.random, 'rand', lambda *a: next(draws))
    (ids, ) = t._random_select_half_body(vis[None], COCO_UPPER, COCO_LOWER)
    assert ids == _ppdet_half_body_choice(vis, prefer_upper)


def test_half_body_needs_more_than_8_joints():
    res = _results()
    res['keypoints_visible'][0, 8:] = 0  # 8 labelled joints: ppdet requires > 8
    t = RandomHalfBody(min_total_keypoints=9, min_upper_keypoints=3, min_lower_keypoints=3, padding=1.5,
                       prob=1.0, upper_prioritized_prob=PPDET_UPPER_BODY_PROB)
    before = res['bbox_center'].copy(), res['bbox_scale'].copy()
    out = t(res)
    np.testing.assert_array_equal(out['bbox_center'], before[0])
    np.testing.assert_array_equal(out['bbox_scale'], before[1])


def test_half_body_box_then_affine_is_ppdet_box():
    """Half-body box: mean of the chosen joints, extent padded to w/h = 0.75 then x1.5 (ppdet order);
    MMPose pads x1.5 first and fixes the aspect ratio in TopdownAffine - the same box."""
    res = _results()
    res['keypoints_visible'][0, 11:] = 0
    res['keypoints_visible'][0, 11:14] = 1  # 11 upper + 3 lower
    np.random.seed(3)
    t = RandomHalfBody(min_total_keypoints=9, min_upper_keypoints=3, min_lower_keypoints=3, padding=1.5,
                       prob=1.0, upper_prioritized_prob=1.0)
    out = t(res)
    sel = res['keypoints'][0, :11]
    w, h = sel.max(0) - sel.min(0)
    if w > 0.75 * h:
        h = w / 0.75
    else:
        w = h * 0.75
    np.testing.assert_allclose(out['bbox_center'][0], sel.mean(0), rtol=1e-6)
    fixed = TopdownAffine._fix_aspect_ratio(out['bbox_scale'], aspect_ratio=96 / 128)
    np.testing.assert_allclose(fixed[0], [w * 1.5, h * 1.5], rtol=1e-5)


def test_pp_random_bbox_transform_distribution():
    """scale: clip(N(1, .25), .75, 1.25) - the clip bounds carry Phi(-1) of the mass each;
    rotation: clip(N(0, 30), -60, 60) with p 0.6, else 0."""
    np.random.seed(0)
    t = PPRandomBBoxTransform(scale_factor=0.25, rotate_factor=30, rotate_prob=0.6)
    n = 20000
    res = t(dict(bbox_scale=np.ones((n, 2), np.float32) * 100, bbox_center=np.zeros((n, 2), np.float32)))
    s = res['bbox_scale'][:, 0] / 100
    r = res['bbox_rotation']
    assert res['bbox_scale'].shape == (n, 2) and np.allclose(res['bbox_scale'][:, 0], res['bbox_scale'][:, 1])
    assert s.min() >= 0.75 - 1e-6 and s.max() <= 1.25 + 1e-6
    tail = 0.5 * (1 + math.erf(-1 / math.sqrt(2)))  # P(randn < -1)
    assert abs(np.isclose(s, 0.75).mean() - tail) < 0.015
    assert abs(np.isclose(s, 1.25).mean() - tail) < 0.015
    rotated = r != 0
    assert abs(rotated.mean() - 0.6) < 0.015
    assert np.abs(r).max() <= 60 + 1e-4
    assert abs(np.isclose(np.abs(r[rotated]), 60).mean() - 2 * 0.5 * (1 + math.erf(-2 / math.sqrt(2)))) < 0.01
    assert abs(r[rotated].std() - 30 * 0.95) < 2  # a clipped N(0, 30): std slightly below 30


def test_pp_random_bbox_transform_keeps_center_and_rejects_bad_args():
    np.random.seed(1)
    res = PPRandomBBoxTransform()(dict(bbox_scale=np.array([[40., 80.]], np.float32),
                                       bbox_center=np.array([[5., 6.]], np.float32)))
    np.testing.assert_array_equal(res['bbox_center'], [[5., 6.]])
    assert res['bbox_rotation'].shape == (1, )
    with pytest.raises(ValueError, match='scale_factor'):
        PPRandomBBoxTransform(scale_factor=1.5)


def test_udp_affine_is_ppdet_matrix():
    """TopdownAffine(use_udp) = ppdet get_warp_matrix(rot, 2c, (W-1, H-1), s):
    x' = (W-1)/sw * (cos*dx - sin*dy) + (W-1)/2, y' = (H-1)/sh * (sin*dx + cos*dy) + (H-1)/2."""
    res = _results()
    res['bbox_rotation'] = np.array([37.0], np.float32)
    c, s = res['bbox_center'][0].astype(np.float64), np.array([75., 100.])
    res['bbox_scale'] = s[None].astype(np.float32)  # already w/h = 0.75
    kpts = res['keypoints'][0].astype(np.float64)
    out = TopdownAffine(input_size=(96, 128), use_udp=True)(res)
    th = math.radians(37.0)
    dx, dy = kpts[:, 0] - c[0], kpts[:, 1] - c[1]
    exp_x = 95 / s[0] * (math.cos(th) * dx - math.sin(th) * dy) + 95 / 2
    exp_y = 127 / s[1] * (math.sin(th) * dx + math.cos(th) * dy) + 127 / 2
    np.testing.assert_allclose(out['transformed_keypoints'][0], np.c_[exp_x, exp_y], atol=2e-3)
    assert out['img'].shape == (128, 96, 3)


def _brute_force_disc(h, w, cx, cy, r):
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    return ((cx - xs) / r)**2 + ((cy - ys) / r)**2 <= 1


@pytest.mark.parametrize('cx,cy,r', [(50.3, 40.7, 12.1), (0.0, 0.0, 15.0), (199.5, 99.2, 19.2), (-30, 50, 10),
                                     (100, 50, 0.5)])
def test_aid_cut_disc_geometry(cx, cy, r):
    img = np.full((100, 200, 3), 7, np.uint8)
    PPAIDCutout.cut_disc(img, cx, cy, r)
    inside = _brute_force_disc(100, 200, cx, cy, r)
    assert np.all(img[inside] == 0) and np.all(img[~inside] == 7)


def test_aid_cutout_samples_in_original_pixels_around_a_labelled_joint():
    """Radius in [0.1, 0.2] x input width, in original-image pixels; centre = a labelled joint
    + N(0, (0.05 * input width)^2) jitter; image pixels zeroed exactly on the disc."""
    t = PPAIDCutout(input_size=(96, 128), prob=1.0, offset_factor=0.05, num_patch=1)
    np.random.seed(0)
    radii, offsets = [], []
    for i in range(300):
        res = _results(seed=i, w=400, h=300)
        res['keypoints_visible'][0, :] = 0
        res['keypoints_visible'][0, 5] = 1  # only joint 5 may be chosen
        discs = t._sample_discs(res['keypoints'], res['keypoints_visible'])
        (cx, cy, r), = discs
        radii.append(r)
        offsets.append(np.array([cx, cy]) - res['keypoints'][0, 5])
    radii, offsets = np.array(radii), np.array(offsets)
    assert radii.min() >= 9.6 and radii.max() <= 19.2 and radii.max() - radii.min() > 8
    assert abs(offsets.std() - 0.05 * 96) < 0.6 and np.abs(offsets.mean(0)).max() < 0.7

    res = _results(seed=1, w=400, h=300)
    img0 = res['img'].copy()
    np.random.seed(5)
    out = t(res)
    zeroed = np.all(out['img'] == 0, axis=2) & np.any(img0 != 0, axis=2)
    assert zeroed.sum() > 0.5 * math.pi * 9.6**2
    ys, xs = np.nonzero(zeroed)
    radius = max(xs.max() - xs.min(), ys.max() - ys.min()) / 2
    assert 9.6 - 1 <= radius <= 19.2 + 1
    near = np.min(np.hypot(res['keypoints'][0, :, 0] - xs.mean(), res['keypoints'][0, :, 1] - ys.mean()))
    assert near < 5 * 0.05 * 96  # within 5 sigma of the jitter from some labelled joint


def test_aid_cutout_probability_and_unlabelled_instances():
    t = PPAIDCutout(input_size=(96, 128), prob=0.5)
    np.random.seed(0)
    hits = sum(bool(t._sample_discs(np.zeros((1, 17, 2)), np.ones((1, 17)))) for _ in range(4000))
    assert abs(hits / 4000 - 0.5) < 0.03
    t1 = PPAIDCutout(input_size=(96, 128), prob=1.0)
    res = _results()
    res['keypoints_visible'][:] = 0
    img0 = res['img'].copy()
    assert np.array_equal(t1(res)['img'], img0)
    with pytest.raises(ValueError, match='input_size'):
        PPAIDCutout(input_size=(96, ))


def test_aid_cutout_does_not_write_through_views():
    t = PPAIDCutout(input_size=(96, 128), prob=1.0)
    res = _results(w=400, h=300)
    base = res['img'].copy()
    res['img'] = base[:, ::-1]  # a view, as RandomFlip leaves it
    np.random.seed(2)
    out = t(res)
    assert np.array_equal(base, _results(w=400, h=300)['img'])
    assert (out['img'] == 0).all(axis=2).any()


def test_finetune_pipeline_runs_on_coco_mini(shared_dir):
    """The configured training pipeline end to end on real images: shapes follow the metainfo,
    and each labelled joint's heatmap peak sits where the transformed keypoint is."""
    from mmengine.registry import init_default_scope
    from kpt_plugin.datasets import PPCocoDataset
    init_default_scope('mmpose')
    cfg = Config.fromfile(FINETUNE_CFG)
    from mmengine.dataset import Compose
    ds = PPCocoDataset(data_root=osp.join(shared_dir, 'data', 'coco_val2017_mini'), ann_file='test_coco.json',
                       data_prefix=dict(img=''), data_mode='topdown', pipeline=[], test_mode=False)
    types = [t['type'] for t in cfg.train_pipeline]
    for needed in ('PPGetBBoxCenterScale', 'RandomFlip', 'RandomHalfBody', 'PPRandomBBoxTransform', 'PPAIDCutout',
                   'TopdownAffine', 'GenerateTarget'):
        assert needed in types
    assert types[-1] == 'PackPoseInputs'
    pipeline = Compose(cfg.train_pipeline[:-1])
    np.random.seed(0)
    checked = 0
    for i in range(len(ds)):
        res = pipeline(ds.get_data_info(i))
        hm, w, kpts = res['heatmaps'], res['keypoint_weights'][0], res['transformed_keypoints'][0]
        assert res['img'].shape == (128, 96, 3) and hm.shape == (17, 32, 24) and w.shape == (17, )
        inside = (kpts[:, 0] >= 0) & (kpts[:, 0] <= 95) & (kpts[:, 1] >= 0) & (kpts[:, 1] <= 127)
        for k in np.flatnonzero((w > 0) & inside):
            y, x = np.unravel_index(hm[k].argmax(), hm[k].shape)
            assert abs(x - kpts[k, 0] / 4) <= 0.5 + 1e-3 and abs(y - kpts[k, 1] / 4) <= 0.5 + 1e-3
            checked += 1
    assert checked > 50
