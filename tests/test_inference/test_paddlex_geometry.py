"""kpt_plugin.inference.paddlex_geometry against PaddleX 3.7.2's own keypoint-module outputs.

Goldens: ``../shared/fixtures/paddlex/module/{whole,gtbox,detbox}/{128x96,256x192}/{noflip,flip}/`` (see
``../shared/fixtures/README.md``). No network runs here: ``heatmap_final`` is what PaddleX's decoder received.
"""
import glob
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from kpt_plugin.inference import paddlex_geometry as pxg

# where conftest.shared_dir looks; used only to list the cases at collection (the tests still take shared_dir,
# so a missing ../shared fails instead of collecting nothing)
_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_SHARED = os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(_REPO), 'shared'))
_MODULE = 'fixtures/paddlex/module'
KINDS, SIZES, FLIPS = ('whole', 'gtbox', 'detbox'), ('128x96', '256x192'), ('noflip', 'flip')


def _case_ids(shared):
    return sorted(osp.relpath(p, osp.join(shared, _MODULE))[:-len('_arrays.npz')]
                  for p in glob.glob(osp.join(shared, _MODULE, '*', '*', '*', '*_arrays.npz')))


CASES = _case_ids(_SHARED)


def _input_size(size):
    h, w = (int(v) for v in size.split('x'))
    return w, h


def _image_path(shared, stem):
    for folder in ('data/coco_val2017_mini', 'data/demo'):
        p = osp.join(shared, folder, f'{stem}.jpg')
        if osp.isfile(p):
            return p
    raise FileNotFoundError(f'no image for {stem}')


def _gt_boxes(shared):
    """annotation id -> (image stem, xyxy): test_coco.json's xywh, x2 = x + w as Python floats."""
    with open(osp.join(shared, 'data/coco_val2017_mini/test_coco.json')) as f:
        coco = json.load(f)
    stems = {im['id']: osp.splitext(im['file_name'])[0] for im in coco['images']}
    return {a['id']: (stems[a['image_id']], [a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                             a['bbox'][1] + a['bbox'][3]]) for a in coco['annotations']}


def _box_for(shared, kind, name):
    """The box PaddleX was given for a golden ``STEM_ann{id}`` / ``STEM_det{j}``."""
    stem, tag = name.rsplit('_', 1)
    if kind == 'gtbox':
        assert tag.startswith('ann')
        img_stem, box = _gt_boxes(shared)[int(tag[3:])]
        assert img_stem == stem
        return box
    assert kind == 'detbox' and tag.startswith('det')
    with open(osp.join(shared, 'fixtures/picodet/320/person_boxes_score_gt_0p5.json')) as f:
        return json.load(f)[stem][int(tag[3:])][:4]


def test_all_goldens_found(shared_dir):
    cases = _case_ids(shared_dir)
    assert len(cases) > 0 and cases == CASES
    jsons = glob.glob(osp.join(shared_dir, _MODULE, '*', '*', '*', '*.json'))
    assert len(cases) == len(jsons)
    for kind in KINDS:
        for size in SIZES:
            for flip in FLIPS:
                n = len([c for c in cases if c.startswith(f'{kind}/{size}/{flip}/')])
                assert n > 0, f'no goldens for {kind}/{size}/{flip}'
    # the same persons in every (size, flip) of a kind: 7 images, 14 GT boxes, 20 detector boxes
    assert len(cases) == 4 * (7 + 14 + 20)


@pytest.mark.parametrize('case', CASES)
def test_geometry_and_decode_match_paddlex(shared_dir, case):
    kind, size, flip, name = case.split('/')
    base = osp.join(shared_dir, _MODULE, case)
    z = np.load(base + '_arrays.npz')
    with open(base + '.json') as f:
        saved = json.load(f)
    input_size = _input_size(size)
    hm_size = (input_size[0] // 4, input_size[1] // 4)
    stem = name if kind == 'whole' else name.rsplit('_', 1)[0]
    img = cv2.imread(_image_path(shared_dir, stem))
    h, w = img.shape[:2]
    np.testing.assert_array_equal(z['ori_img_size'], [w, h])

    # (a) center / scale
    if kind == 'whole':
        center, scale = pxg.whole_image_center_scale(w, h)
    else:
        box = _box_for(shared_dir, kind, name)
        np.testing.assert_array_equal(z['box'][:4], box)
        center, scale = pxg.box_center_scale(box, input_size)
    np.testing.assert_array_equal(center, z['center'])
    np.testing.assert_array_equal(scale, z['scale'])

    # (b) crop matrix and back-projection (measured: bit-identical)
    np.testing.assert_allclose(pxg.crop_affine(center, scale, input_size), z['crop_affine'], rtol=0, atol=1e-12)
    np.testing.assert_allclose(pxg.back_projection(center, scale, hm_size), z['backproj_affine'], rtol=0, atol=1e-12)

    # (c) network input (whole image only; measured: bit-identical)
    if kind == 'whole':
        x = pxg.normalize(pxg.warp(img, pxg.crop_affine(center, scale, input_size), input_size))
        assert x.dtype == np.float32 and x.shape == z['input'].shape
        np.testing.assert_allclose(x, z['input'], rtol=0, atol=1e-6)

    # (d) decode (measured: bit-identical keypoints and scores)
    kpts, kpt_score = pxg.decode(z['heatmap_final'], center, scale)
    assert kpts.dtype == np.float32 and kpts.shape == (1, 17, 3) and kpt_score.dtype == np.float32
    np.testing.assert_allclose(kpts[..., :2], z['keypoints'][..., :2], rtol=0, atol=1e-3)
    np.testing.assert_allclose(kpts[..., 2], z['keypoints'][..., 2], rtol=0, atol=1e-6)
    np.testing.assert_allclose(kpt_score, z['kpt_score'], rtol=0, atol=1e-6)

    # what PaddleX's save_to_json wrote: the same numbers, float32 values as JSON doubles
    assert saved['input_path'] == f'{stem}.jpg' and set(saved) == {'input_path', 'kpts'}
    assert len(saved['kpts']) == 1 and set(saved['kpts'][0]) == {'keypoints', 'kpt_score'}
    np.testing.assert_allclose(np.array(saved['kpts'][0]['keypoints']), kpts[0], rtol=0, atol=1e-3)
    assert abs(saved['kpts'][0]['kpt_score'] - float(kpt_score[0])) <= 1e-6


def test_decode_batch_equals_single(shared_dir):
    paths = sorted(glob.glob(osp.join(shared_dir, _MODULE, 'detbox', '256x192', 'flip', '*_arrays.npz')))
    zs = [np.load(p) for p in paths]
    assert len(zs) > 1
    kpts, scores = pxg.decode(np.stack([z['heatmap_final'] for z in zs]), np.stack([z['center'] for z in zs]),
                              np.stack([z['scale'] for z in zs]))
    for i, z in enumerate(zs):
        one, s = pxg.decode(z['heatmap_final'][None], z['center'][None], z['scale'][None])
        np.testing.assert_array_equal(kpts[i:i + 1], one)
        np.testing.assert_array_equal(scores[i:i + 1], s)


def test_box_center_scale_keeps_the_box_dtype():
    # a detector's float32 box stays float32, as in PaddleX's pipeline (numpy 2 promotion)
    box = np.array([10.5, 20.25, 60.75, 220.5], dtype=np.float32)
    c, s = pxg.box_center_scale(box, (96, 128))
    assert c.dtype == np.float32 and s.dtype == np.float32
    c64, s64 = pxg.box_center_scale([float(v) for v in box], (96, 128))
    assert c64.dtype == np.float64 and s64.dtype == np.float64
    np.testing.assert_allclose(c, c64, rtol=1e-6)
    # taller than 3:4 -> widened to h * 0.75, then x1.25
    np.testing.assert_allclose(s64, [200.25 * 0.75 * 1.25, 200.25 * 1.25])
    _, wide = pxg.box_center_scale([0., 0., 300., 100.], (96, 128))
    np.testing.assert_allclose(wide, [300. * 1.25, 400. * 1.25])


def test_crop_affine_uses_only_scale_width():
    center, size = np.array([320., 200.]), (96, 128)
    m = pxg.crop_affine(center, np.array([192., 256.]), size)
    np.testing.assert_allclose(m, pxg.crop_affine(center, np.array([192., 10.]), size), atol=1e-12)
    np.testing.assert_allclose(m @ [320., 200., 1.], [48., 64.], atol=1e-9)  # center -> input center
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 0.5, atol=1e-12)  # 192 px -> 96 px, both axes
    assert m.dtype == np.float64


def test_crop_affine_udp_branch():
    center, scale, size = np.array([320., 200.]), np.array([191., 255.]), (96, 128)
    m = pxg.crop_affine(center, scale, size, use_udp=True)
    assert m.dtype == np.float32 and m.shape == (2, 3)
    # UDP: (center, scale) -> (size - 1) / 2 and size - 1, independently per axis
    np.testing.assert_allclose(m.astype(np.float64) @ [320., 200., 1.], [47.5, 63.5], atol=1e-4)
    np.testing.assert_allclose(np.diag(m[:, :2]), [95. / 191., 127. / 255.], rtol=1e-6)


def test_normalize_is_alpha_beta_in_float32():
    crop = np.random.default_rng(0).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    x = pxg.normalize(crop)
    assert x.shape == (1, 3, 4, 3) and x.dtype == np.float32
    for c, rgb in enumerate((2, 1, 0)):  # BGR in, RGB out
        alpha = np.float32(1.0 / 255.0 / pxg.IMAGENET_STD[c])
        beta = np.float32(-pxg.IMAGENET_MEAN[c] / pxg.IMAGENET_STD[c])
        np.testing.assert_array_equal(x[0, c], crop[..., rgb].astype(np.float32) * alpha + beta)
    np.testing.assert_array_equal(pxg.normalize(np.stack([crop, crop])), np.concatenate([x, x]))
    with pytest.raises(ValueError):
        pxg.normalize(np.zeros((4, 3), np.uint8))


def test_flip_fuse_index_arithmetic():
    rng = np.random.default_rng(1)
    hm, hf = (rng.random((2, 17, 8, 6), dtype=np.float32) for _ in range(2))
    partner = list(range(17))
    for a, b in pxg.COCO_FLIP_PAIRS:
        partner[a], partner[b] = b, a
    out = pxg.flip_fuse(hm, hf)
    hf0 = hf.copy()
    w = hm.shape[-1]
    for j in range(17):
        for c in range(w):
            # flipped back: column c <- w-1-c; shifted right: column c <- c-1, column 0 kept
            src = w - 1 - max(c - 1, 0)
            np.testing.assert_array_equal(out[:, j, :, c], (hm[:, j, :, c] + hf[:, partner[j], :, src]) * 0.5)
    np.testing.assert_array_equal(hf, hf0)  # inputs untouched
    assert out.dtype == np.float32
    unshifted = pxg.flip_fuse(hm, hf, shift=False)
    np.testing.assert_array_equal(unshifted[:, 0], (hm[:, 0] + hf[:, 0, :, ::-1]) * 0.5)


def test_decode_non_positive_peak_and_quarter_rule():
    hm = np.full((1, 17, 32, 24), -1.0, dtype=np.float32)
    hm[0, 1:, 10, 12] = 1.0
    hm[0, 1:, 10, 13] = 0.5  # right neighbour higher than the left one
    center, scale = np.array([100., 200.]), np.array([96., 128.])
    kpts, score = pxg.decode(hm, center, scale)
    t = pxg.back_projection(center, scale, (24, 32))
    # joint 0 has no positive peak: heatmap (0, 0), still back-projected, score kept (PaddleX neither drops it
    # nor zeroes it)
    np.testing.assert_allclose(kpts[0, 0, :2], t[:, 2], atol=1e-4)
    assert kpts[0, 0, 2] == -1.0
    assert score[0] == np.mean(kpts[0, :, 2], dtype=np.float32)
    plain, _ = pxg.decode(hm, center, scale, use_dark=False)
    np.testing.assert_allclose(plain[0, 1, :2], t @ [12.25, 10., 1.], atol=1e-4)
    hm_copy = hm.copy()
    pxg.decode(hm, center, scale)
    np.testing.assert_array_equal(hm, hm_copy)
    with pytest.raises(ValueError):
        pxg.decode(hm, np.zeros((2, 2)), np.ones((2, 2)))


def test_resolve_center_scale_defaults_each_alone():
    c, s = pxg.resolve_center_scale(640, 480)
    np.testing.assert_array_equal(c, [320., 240.])
    np.testing.assert_array_equal(s, [640, 480])
    c, s = pxg.resolve_center_scale(640, 480, center=[10, 20])
    np.testing.assert_array_equal(c, [10, 20])
    np.testing.assert_array_equal(s, [640, 480])


def test_parse_paddlex_dict_input():
    img = np.zeros((8, 6, 3), np.uint8)
    src, c, s = pxg.parse_paddlex_dict_input({'img': img, 'img_path': 'ignored.jpg', 'center': [3, 4],
                                             'scale': (6., 8.)})
    assert src is img and isinstance(c, np.ndarray) and c.dtype == np.int64 and s.dtype == np.float64
    c32 = np.array([3., 4.], np.float32)
    src, c, s = pxg.parse_paddlex_dict_input({'img_path': 'a.jpg', 'center': c32})
    assert src == 'a.jpg' and c is c32 and s is None
    for bad, err in (([], TypeError), ({'center': [1, 2]}, ValueError), ({'img': 3}, TypeError),
                     ({'img': np.zeros((4, 4), np.uint8)}, ValueError),
                     ({'img_path': 'a.jpg', 'center': [1, 2, 3]}, ValueError),
                     ({'img_path': 'a.jpg', 'scale': [0, 2]}, ValueError),
                     ({'img_path': 'a.jpg', 'scale': [np.nan, 2]}, ValueError),
                     ({'img_path': 'a.jpg', 'center': ['a', 'b']}, ValueError)):
        with pytest.raises(err):
            pxg.parse_paddlex_dict_input(bad)
