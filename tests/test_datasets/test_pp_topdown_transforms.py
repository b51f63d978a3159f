"""ppdet's box -> center/scale and UDP crop reproduce ppdet's network inputs (golden fixtures)."""
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmpose.datasets.transforms import GetBBoxCenterScale, TopdownAffine

import kpt_plugin  # noqa: F401
from kpt_plugin.datasets import PPCocoDataset, PPGetBBoxCenterScale, PPTopdownAffine
from kpt_plugin.datasets.transforms import pp_udp_warp_matrix

init_default_scope('mmpose')  # pipelines built outside a Runner resolve names in mmpose's registries

SIZES = {'128x96': (96, 128), '256x192': (192, 256)}
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


def _pipeline(input_size):
    return [
        dict(type='LoadImage', color_type='color_ignore_orientation'),
        dict(type='PPGetBBoxCenterScale', input_size=input_size),
        dict(type='PPTopdownAffine', input_size=input_size),
        dict(type='PackPoseInputs'),
    ]


def _dataset(shared_dir, pipeline):
    return PPCocoDataset(data_root=osp.join(shared_dir, 'data', 'coco_val2017_mini'), ann_file='test_coco.json',
                         data_prefix=dict(img=''), test_mode=True, pipeline=pipeline)


def _raw(shared_dir, size):
    return np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results', f'{size}_coco_flip_raw.npz'))


@pytest.mark.parametrize('size', SIZES)
def test_center_scale_match_ppdet(shared_dir, size):
    raw = _raw(shared_dir, size)
    ds = _dataset(shared_dir, [dict(type='PPGetBBoxCenterScale', input_size=SIZES[size])])
    assert len(ds) == len(raw['im_id'])
    for i in range(len(ds)):
        d = ds[i]
        assert d['img_id'] == raw['im_id'][i]
        # ppdet keeps float32 center/scale (scale in 200 px units); ours is the same float32 center
        # and float32(scale * 200), the value ppdet's TopDownAffine and back-projection use
        np.testing.assert_array_equal(d['bbox_center'][0], raw['all_boxes'][i, :2].astype(np.float32))
        ppdet_scale_px = raw['all_boxes'][i, 2:4].astype(np.float32) * np.float32(200.0)
        np.testing.assert_array_equal(d['bbox_scale'][0], ppdet_scale_px)


def test_stock_mmpose_boxes_differ(shared_dir):
    """The reason for PPGetBBoxCenterScale: MMPose's x + w box convention moves the center by 0.5 px."""
    raw = _raw(shared_dir, '128x96')
    ds = PPCocoDataset(data_root=osp.join(shared_dir, 'data', 'coco_val2017_mini'), ann_file='test_coco.json',
                       data_prefix=dict(img=''), test_mode=True, pipeline=[])
    stock = GetBBoxCenterScale(padding=1.25)
    diffs = []
    for i in range(len(ds)):
        d = ds[i]
        x, y, w, h = d['raw_ann_info']['bbox']
        out = stock.transform(dict(bbox=np.array([[x, y, x + w, y + h]], np.float32)))
        diffs.append(np.abs(out['bbox_center'][0] - raw['all_boxes'][i, :2]).max())
    assert max(diffs) > 0.4


@pytest.mark.parametrize('size', SIZES)
def test_crops_match_ppdet_network_inputs(shared_dir, size):
    raw = _raw(shared_dir, size)
    ds = _dataset(shared_dir, _pipeline(SIZES[size]))
    for i in range(len(ds)):
        img = ds[i]['inputs'].numpy().transpose(1, 2, 0)[..., ::-1].astype(np.float32)  # BGR -> RGB
        x = ((img - MEAN) / STD).transpose(2, 0, 1)
        # same uint8 crop; only the normalisation's float32 rounding differs (<= 2 ulp)
        assert np.abs(x - raw['inputs'][i]).max() < 1e-6, i


def test_affine_keeps_scale_and_maps_center():
    size = (192, 256)
    c = np.array([[321.5, 211.25]], np.float32)
    s = np.array([[150.3, 200.5]], np.float32)  # aspect not exactly 0.75: MMPose would re-fix it
    img = np.zeros((480, 640, 3), np.uint8)
    out = PPTopdownAffine(size).transform(dict(img=img, bbox_center=c, bbox_scale=s, keypoints=c[None].copy()))
    np.testing.assert_array_equal(out['input_scale'], s[0])
    assert out['img'].shape == (256, 192, 3)
    # UDP: the box center lands on the crop's center pixel ((w - 1) / 2, (h - 1) / 2)
    np.testing.assert_allclose(out['transformed_keypoints'][0, 0], [95.5, 127.5], atol=1e-3)
    stock = TopdownAffine(size, use_udp=True).transform(dict(img=img, bbox_center=c, bbox_scale=s.copy()))
    assert not np.array_equal(stock['input_scale'], s[0])


def test_rotation_matches_mmpose_udp_matrix():
    from mmpose.structures.bbox import get_udp_warp_matrix
    c, s = np.array([300., 200.], np.float32), np.array([150., 200.], np.float32)
    ours = pp_udp_warp_matrix(c, s, (192, 256), rot=30.)
    theirs = get_udp_warp_matrix(c, s, 30., output_size=(192, 256))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match='input_size'):
        PPGetBBoxCenterScale((0, 128))
    with pytest.raises(NotImplementedError, match='use_udp'):
        PPTopdownAffine((96, 128), use_udp=False)
    two = dict(img=np.zeros((8, 8, 3), np.uint8), bbox_center=np.zeros((2, 2), np.float32),
               bbox_scale=np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match='one instance'):
        PPTopdownAffine((96, 128)).transform(two)
