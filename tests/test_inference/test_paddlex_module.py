"""``create_model(...).predict`` end to end against PaddleX 3.7.2's own keypoint module (its JSON outputs).

Every golden of ``../shared/fixtures/paddlex/module/{whole,gtbox,detbox}/{size}/{noflip,flip}/`` is reproduced from
the PaddleX model directory given as ``model_dir`` (converted once into the test cache): keypoints <= 0.01 px,
scores and ``kpt_score`` <= 1e-4. Whole images are predicted without boxes (PaddleX's module semantics); GT and
detector boxes go in as ``bboxes`` (PaddleX's pipeline box rule), all persons of an image in one call.
"""
import collections
import glob
import json
import os.path as osp

import numpy as np
import pytest

import kpt_plugin

SIZES = ('128x96', '256x192')


def _image(shared, stem):
    for folder in ('data/coco_val2017_mini', 'data/demo'):
        p = osp.join(shared, folder, f'{stem}.jpg')
        if osp.isfile(p):
            return p
    raise FileNotFoundError(stem)


def _boxes(shared, kind):
    """image stem -> [(golden name, xyxy)] of the boxes PaddleX was given."""
    out = collections.defaultdict(list)
    if kind == 'gtbox':
        with open(osp.join(shared, 'data/coco_val2017_mini/test_coco.json')) as f:
            coco = json.load(f)
        stems = {im['id']: osp.splitext(im['file_name'])[0] for im in coco['images']}
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            out[stems[a['image_id']]].append((f'{stems[a["image_id"]]}_ann{a["id"]}', [x, y, x + w, y + h]))
    else:
        with open(osp.join(shared, 'fixtures/picodet/320/person_boxes_score_gt_0p5.json')) as f:
            for stem, boxes in json.load(f).items():
                out[stem] = [(f'{stem}_det{j}', b[:4]) for j, b in enumerate(boxes)]
    return out


@pytest.fixture(scope='module', params=[(s, f) for s in SIZES for f in (False, True)],
                ids=lambda p: f'{p[0]}-{"flip" if p[1] else "noflip"}')
def case(request, shared_dir):
    size, flip = request.param
    model_dir = osp.join(shared_dir, 'weights', 'paddlex_inference_enhance', f'PP-TinyPose_{size}')
    model = kpt_plugin.create_model(f'PP-TinyPose_{size}', model_dir=model_dir, device='cpu', flip=flip)
    return size, 'flip' if flip else 'noflip', model


def _check(got, golden, where):
    g = np.asarray(golden['keypoints'], np.float64)
    o = np.asarray(got['keypoints'], np.float64)
    assert o.shape == g.shape == (17, 3), where
    dxy = np.abs(o[:, :2] - g[:, :2]).max()
    assert dxy <= 0.01, f'{where}: keypoints off by {dxy:.4f} px'
    assert np.abs(o[:, 2] - g[:, 2]).max() <= 1e-4, where
    assert abs(got['kpt_score'] - golden['kpt_score']) <= 1e-4, where
    return dxy


def _golden(shared, kind, size, flip, name):
    with open(osp.join(shared, 'fixtures/paddlex/module', kind, size, flip, f'{name}.json')) as f:
        data = json.load(f)
    assert len(data['kpts']) == 1
    return data['kpts'][0]


def test_whole_images(case, shared_dir):
    size, flip, model = case
    files = sorted(glob.glob(osp.join(shared_dir, 'fixtures/paddlex/module/whole', size, flip, '*.json')))
    assert len(files) == 7
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    results = list(model.predict([_image(shared_dir, s) for s in stems], batch_size=4))
    for stem, res in zip(stems, results):
        assert res.ok and len(res['kpts']) == 1
        _check(res['kpts'][0], _golden(shared_dir, 'whole', size, flip, stem), f'whole/{size}/{flip}/{stem}')


@pytest.mark.parametrize('kind', ['gtbox', 'detbox'])
def test_boxes(case, shared_dir, kind):
    size, flip, model = case
    per_image = _boxes(shared_dir, kind)
    n_golden = len(glob.glob(osp.join(shared_dir, 'fixtures/paddlex/module', kind, size, flip, '*.json')))
    assert sum(len(v) for v in per_image.values()) == n_golden > 0
    stems = sorted(per_image)
    results = list(model.predict([_image(shared_dir, s) for s in stems],
                                 bboxes=[[b for _, b in per_image[s]] for s in stems], batch_size=2))
    for stem, res in zip(stems, results):
        assert res.ok and len(res['kpts']) == len(per_image[stem])
        for (name, _), got in zip(per_image[stem], res['kpts']):
            _check(got, _golden(shared_dir, kind, size, flip, name), f'{kind}/{size}/{flip}/{name}')


def test_paddlex_dict_input_equals_boxes(case, shared_dir):
    """PaddleX's own pipeline input ``{'img_path', 'center', 'scale'}`` gives the golden of that box."""
    size, flip, model = case
    arrays = np.load(osp.join(shared_dir, 'fixtures/paddlex/module/gtbox', size, flip, '000000000785_ann'
                              f'{_boxes(shared_dir, "gtbox")["000000000785"][0][0].split("_ann")[1]}_arrays.npz'))
    name = _boxes(shared_dir, 'gtbox')['000000000785'][0][0]
    res = next(model.predict({'img_path': _image(shared_dir, '000000000785'), 'center': arrays['center'],
                              'scale': arrays['scale']}))
    _check(res['kpts'][0], _golden(shared_dir, 'gtbox', size, flip, name), f'dict/{size}/{flip}/{name}')
