"""PPCocoDataset: ppdet's instances and boxes, detector-box mode, and clear errors for bad inputs."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import kpt_plugin  # noqa: F401
from kpt_plugin.datasets import PPCocoDataset, PPDatasetError

init_default_scope('mmpose')

_spec = importlib.util.spec_from_file_location('kpt_coco_cases', osp.join(osp.dirname(__file__), 'coco_cases.py'))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


def _mini(shared_dir):
    return osp.join(shared_dir, 'data', 'coco_val2017_mini')


def _ds(root, ann='test_coco.json', pipeline=(), **kw):
    return PPCocoDataset(data_root=str(root), ann_file=ann, data_prefix=dict(img=''), test_mode=True,
                         pipeline=list(pipeline), **kw)


@pytest.fixture
def mini_copy(shared_dir, tmp_path):
    """A writable folder with the mini set's images (links) and its annotation dict."""
    src = _mini(shared_dir)
    with open(osp.join(src, 'test_coco.json')) as f:
        ann = json.load(f)
    for img in ann['images']:
        (tmp_path / img['file_name']).symlink_to(osp.join(src, img['file_name']))
    return tmp_path, ann


def _write(path, ann):
    with open(path, 'w') as f:
        json.dump(ann, f)


def test_gt_instances_follow_ppdet(shared_dir):
    ds = _ds(_mini(shared_dir))
    raw = np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results', '128x96_coco_flip_raw.npz'))
    assert [ds[i]['img_id'] for i in range(len(ds))] == raw['im_id'].tolist()  # 14 anns, 2 without keypoints
    d = ds[0]
    x, y, w, h = d['raw_ann_info']['bbox']
    # ppdet's pixel-inclusive box, kept in float64
    assert d['bbox'].dtype == np.float64
    np.testing.assert_array_equal(d['bbox'][0], [x, y, x + (w - 1), y + (h - 1)])
    assert ds.skipped['no keypoints'] == 2


def test_clipping_at_the_image_border(mini_copy):
    root, ann = mini_copy
    img = ann['images'][0]
    a = dict(ann['annotations'][0], id=1, bbox=[-5.0, 10.0, img['width'] + 20.0, 30.0])
    _write(root / 'a.json', dict(ann, annotations=[a]))
    d = _ds(root, 'a.json')[0]
    np.testing.assert_array_equal(d['bbox'][0], [0.0, 10.0, img['width'] - 1.0, 39.0])


def test_crowd_and_keypointless_annotations_are_skipped(mini_copy):
    root, ann = mini_copy
    anns = ann['annotations']
    crowd = dict(anns[0], id=900001, iscrowd=1)
    no_kpt_key = {k: v for k, v in anns[0].items() if k != 'keypoints'}
    no_kpt_key['id'] = 900002
    zero_kpts = dict(anns[0], id=900003, keypoints=[0] * 51)
    zero_area = dict(anns[0], id=900004, area=0)
    _write(root / 'a.json', dict(ann, annotations=anns + [crowd, no_kpt_key, zero_kpts, zero_area]))
    ds = _ds(root, 'a.json')
    assert len(ds) == 12
    assert ds.skipped == {'crowd': 1, 'no keypoints': 4, 'empty box/area': 1}


def test_missing_image_file(mini_copy):
    root, ann = mini_copy
    ann['images'][1]['file_name'] = 'does_not_exist.jpg'
    _write(root / 'a.json', ann)
    with pytest.raises(PPDatasetError, match=r'does_not_exist\.jpg.*missing_images="skip"'):
        _ds(root, 'a.json')
    ds = _ds(root, 'a.json', missing_images='skip')
    assert len(ds) == 12 - 2  # image 40083 holds 2 persons with keypoints
    assert 40083 not in {ds[i]['img_id'] for i in range(len(ds))}


def test_empty_image_list(mini_copy):
    root, ann = mini_copy
    _write(root / 'a.json', dict(ann, images=[]))
    with pytest.raises(PPDatasetError, match='empty "images" list'):
        _ds(root, 'a.json')


def test_no_usable_instance(mini_copy):
    root, ann = mini_copy
    _write(root / 'a.json', dict(ann, annotations=[dict(a, iscrowd=1) for a in ann['annotations']]))
    with pytest.raises(PPDatasetError, match='no instance to evaluate'):
        _ds(root, 'a.json')


@pytest.mark.parametrize('content,match', [
    ('{"images": [', 'not valid JSON'),
    ('[1, 2]', 'expected a JSON object'),
    ('{"images": [{"id": 1}]}', r"lacks \['file_name'"),
])
def test_malformed_annotation_file(tmp_path, content, match):
    (tmp_path / 'a.json').write_text(content)
    with pytest.raises(PPDatasetError, match=match):
        _ds(tmp_path, 'a.json')


def test_missing_annotation_file(tmp_path):
    with pytest.raises(PPDatasetError, match='does not exist'):
        _ds(tmp_path, 'nope.json')


def test_wrong_keypoint_count(mini_copy):
    root, ann = mini_copy
    bad = dict(ann['annotations'][0], id=77, keypoints=[1, 2, 2] * 5)
    _write(root / 'a.json', dict(ann, annotations=[bad]))
    with pytest.raises(PPDatasetError, match='annotation id 77'):
        _ds(root, 'a.json')


def test_detector_boxes(shared_dir):
    root = _mini(shared_dir)
    with open(osp.join(root, 'test_coco_det_AP_H_56.json')) as f:
        dets = json.load(f)
    ds = _ds(root, bbox_file=osp.join(root, 'test_coco_det_AP_H_56.json'))
    assert len(ds) == sum(d['category_id'] == 1 for d in dets)
    d, det = ds[0], dets[0]
    x, y, w, h = det['bbox']
    np.testing.assert_array_equal(d['bbox'][0], [x, y, x + w, y + h])  # unclipped, float64 as ppdet
    assert d['bbox_score'][0] == det['score']
    thr = _ds(root, bbox_file=osp.join(root, 'test_coco_det_AP_H_56.json'), filter_cfg=dict(bbox_score_thr=0.5))
    assert len(thr) == sum(d['category_id'] == 1 and d['score'] >= 0.5 for d in dets)


def test_detector_boxes_bad_inputs(mini_copy):
    root, ann = mini_copy
    _write(root / 'a.json', ann)
    good = dict(image_id=785, category_id=1, bbox=[10.0, 20.0, 50.0, 100.0], score=0.9)
    _write(root / 'dets.json', [good, dict(good, image_id=123456789)])  # second: image not in ann_file
    ds = _ds(root, 'a.json', bbox_file=str(root / 'dets.json'))
    assert len(ds) == 1 and ds.skipped['detections on images not in ann_file'] == 1
    _write(root / 'dets.json', [dict(image_id=785, bbox=[1, 2])])
    with pytest.raises(PPDatasetError, match='entry 0 needs'):
        _ds(root, 'a.json', bbox_file=str(root / 'dets.json'))
    _write(root / 'dets.json', {'not': 'a list'})
    with pytest.raises(PPDatasetError, match='detection results list'):
        _ds(root, 'a.json', bbox_file=str(root / 'dets.json'))
    _write(root / 'dets.json', [dict(good, score=0.1)])
    with pytest.raises(PPDatasetError, match='no instance to evaluate'):
        _ds(root, 'a.json', bbox_file=str(root / 'dets.json'), filter_cfg=dict(bbox_score_thr=0.5))


def test_undecodable_image_does_not_stop_the_run(mini_copy):
    root, ann = mini_copy
    name = ann['images'][0]['file_name']
    (root / name).unlink()
    (root / name).write_bytes(b'not a jpeg')
    _write(root / 'a.json', ann)
    pipeline = [dict(type='LoadImage'), dict(type='PPGetBBoxCenterScale', input_size=(96, 128)),
                dict(type='PPTopdownAffine', input_size=(96, 128)), dict(type='PackPoseInputs')]
    ds = _ds(root, 'a.json', pipeline=pipeline)
    bad = ds[0]  # image 785: a black placeholder, flagged by a NaN box score
    assert bad['data_samples'].img_id == 785 and np.isnan(bad['data_samples'].gt_instances.bbox_scores[0])
    assert bad['inputs'].shape == (3, 128, 96) and int(bad['inputs'].max()) == 0
    good = ds[1]
    assert good['data_samples'].gt_instances.bbox_scores[0] == 1.0 and int(good['inputs'].max()) > 0


@pytest.mark.parametrize('name', [None] + sorted(cases.CASES))
def test_bad_annotation_table(name, shared_dir, tmp_path):
    """Each case of coco_cases.CASES: one-line PPDatasetError naming the file, the entry and the fix."""
    path = cases.write_case(shared_dir, name, tmp_path / 'a.json')
    kw = dict(data_root=str(tmp_path), ann_file='a.json', data_prefix=dict(img=_mini(shared_dir)), test_mode=True,
              pipeline=[])
    if name is None:  # positive control
        assert len(PPCocoDataset(**kw)) == 12
        return
    with pytest.raises(PPDatasetError) as e:
        PPCocoDataset(**kw)
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith(f'ann_file {path}: ')
    for fragment in cases.CASES[name][1]:
        assert fragment in msg, (fragment, msg)


@pytest.mark.parametrize('name', sorted(cases.DET_CASES))
def test_bad_detection_table(name, shared_dir, tmp_path):
    path = cases.write_det_case(shared_dir, name, tmp_path / 'dets.json')
    with pytest.raises(PPDatasetError) as e:
        _ds(_mini(shared_dir), bbox_file=path)
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith(f'bbox_file {path}: ')
    assert all(f in msg for f in cases.DET_CASES[name][1]), msg
