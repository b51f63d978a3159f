"""coco_schema: the one COCO keypoint validator (structured problems; ppdet-lenient by default, strict for
check-dataset)."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

from kpt_plugin.datasets.coco_schema import (Problem, check_coco, check_detections, load_json, ppdet_filter,
                                             raise_first)
from kpt_plugin.errors import DatasetError, KptError

_spec = importlib.util.spec_from_file_location('kpt_coco_cases', osp.join(osp.dirname(__file__), 'coco_cases.py'))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


def _mini(shared_dir):
    with open(osp.join(shared_dir, *cases.MINI, 'test_coco.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('strict', [False, True])
def test_the_unmodified_file_passes(shared_dir, strict):
    ck = check_coco(_mini(shared_dir), 'test_coco.json', num_keypoints=None if strict else 17, strict=strict)
    assert ck.problems == [] and ck.warnings == []
    assert (ck.usable, ck.skipped) == (12, {'no keypoints': 2})  # ppdet's 12 instances
    assert len(ck.images) == 4 and ck.num_keypoints == 17 and ck.num_classes == 1 and len(ck.skeleton) == 19
    assert len(ck.keypoints) == 14 and ck.keypoints[0].shape == (17, 3)


@pytest.mark.parametrize('name', sorted(cases.CASES))
def test_each_case_is_one_structured_problem(name, shared_dir, tmp_path):
    path = cases.write_case(shared_dir, name, tmp_path / 'a.json')
    data, problem = load_json(path)
    assert problem is None
    ck = check_coco(data, path, num_keypoints=17)
    first = ck.problems[0]
    assert isinstance(first, Problem) and first.file == path and first.what and first.fix
    msg = str(first)
    assert msg.startswith(f'{path}: ') and '\n' not in msg
    for fragment in cases.CASES[name][1]:
        assert fragment in msg, (fragment, msg)
    if first.section == 'annotations' and first.index is not None:
        assert first.entry_id == data['annotations'][first.index]['id']


def test_problem_fields(shared_dir):
    data = _mini(shared_dir)
    cases.CASES['duplicate annotation id'][0](data)
    (p,) = check_coco(data, 'x.json').problems
    assert (p.section, p.index, p.entry_id) == ('annotations', 1, 442619)
    assert p.entry == 'annotation id 442619 (annotations[1], image id 40083)'


def test_ppdet_rules_pass_by_default_and_fail_strict(shared_dir):
    """What ppdet clips or skips is valid for the dataset (parity) and a problem only for check-dataset."""
    data = _mini(shared_dir)
    anns = data['annotations']
    anns[0]['bbox'] = [-5.0, 10.0, 700.0, 30.0]  # outside the 640 px image: ppdet clips it
    anns[1]['keypoints'][2] = 3  # visibility 3
    anns[2]['bbox'][2] = 0  # zero width: ppdet keeps it (its area is > 0)
    del anns[4]['keypoints']  # ppdet skips it
    lenient = check_coco(data, 'x.json', num_keypoints=17)
    assert lenient.problems == [] and lenient.skipped['no keypoints'] == 3
    strict = '\n'.join(str(p) for p in check_coco(data, 'x.json', strict=True).problems)
    for fragment in ('lies outside the 640x425 image', 'visibility values [3.0]', 'non-positive width/height',
                     '"keypoints" must be a list of numbers, got NoneType'):
        assert fragment in strict


def test_ppdet_filter(shared_dir):
    data = _mini(shared_dir)
    img, ann = data['images'][0], data['annotations'][0]
    reason, box, area = ppdet_filter(ann, img)
    x, y, w, h = ann['bbox']
    assert reason is None and area == ann['area'] and box == (x, y, w - 1, h - 1)
    assert ppdet_filter(dict(ann, iscrowd=1), img)[0] == 'crowd'
    assert ppdet_filter(dict(ann, keypoints=[0] * 51), img)[0] == 'no keypoints'
    assert ppdet_filter(dict(ann, area=0), img)[0] == 'empty box/area'
    assert ppdet_filter(dict(ann, bbox=[700.0, 0, 5, 5]), img)[0] == 'empty box/area'


def test_detector_mode_needs_only_images(shared_dir):
    data = _mini(shared_dir)
    del data['annotations']
    assert check_coco(data, 'x.json', need_annotations=False, need_instances=False).problems == []
    (p,) = check_coco(data, 'x.json').problems
    assert '"annotations" is missing or not a list' in str(p) and 'bbox_file' in p.fix


@pytest.mark.parametrize('mutate,fragment', [
    (lambda d: d['annotations'][0].update(keypoints=[[1, 2], [3]]), '"keypoints" must be a list of numbers'),
    (lambda d: d['annotations'][0].update(image_id=[785]), 'no image with this id'),
    (lambda d: d['annotations'][0].update(iscrowd=2), '"iscrowd" must be 0 or 1'),
    (lambda d: d['annotations'].__setitem__(0, 'x'), 'annotations[0]: is not an object'),
    (lambda d: d['annotations'][0].pop('id'), "annotations[0]: lacks ['id']"),
    (lambda d: d['images'][0].update(height=0), 'width/height must be positive numbers'),
    (lambda d: d.update(images=[]), 'empty "images" list'),
    (lambda d: d.update(annotations={}), '"annotations" is missing or not a list'),
])
def test_odd_values_are_problems_not_crashes(shared_dir, mutate, fragment):
    data = _mini(shared_dir)
    mutate(data)
    problems = check_coco(data, 'x.json', num_keypoints=17).problems
    assert problems and fragment in str(problems[0]), problems


def test_check_detections(shared_dir, tmp_path):
    with open(osp.join(shared_dir, *cases.MINI, 'test_coco_det_AP_H_56.json')) as f:
        assert check_detections(json.load(f), 'd.json') == []
    for name, (_, fragments) in cases.DET_CASES.items():
        path = cases.write_det_case(shared_dir, name, tmp_path / 'd.json')
        with open(path) as f:
            msg = str(check_detections(json.load(f), path)[0])
        assert msg.startswith(path) and all(f in msg for f in fragments), msg
    assert 'detection results list' in str(check_detections({'a': 1}, 'd.json')[0])


def test_load_json_problems(tmp_path):
    assert 'does not exist' in str(load_json(str(tmp_path / 'nope.json'))[1])
    (tmp_path / 'bad.json').write_text('{"images": [')
    assert 'is not valid JSON' in str(load_json(str(tmp_path / 'bad.json'))[1])
    (tmp_path / 'bin.json').write_bytes(b'\xff\xfe\x00')
    data, problem = load_json(str(tmp_path / 'bin.json'), file='shown.json')
    assert data is None and str(problem).startswith('shown.json: is not a UTF-8')


def test_raise_first_is_one_line_kpt_error(shared_dir):
    data = _mini(shared_dir)
    for a in data['annotations']:
        a['bbox'] = None
    problems = check_coco(data, 'x.json').problems
    assert len(problems) == 15  # 14 boxes + no usable instance
    raise_first([], 'ann_file')  # nothing to raise
    with pytest.raises(DatasetError) as e:
        raise_first(problems, 'ann_file')
    assert isinstance(e.value, KptError) and isinstance(e.value, ValueError)
    msg = str(e.value)
    assert msg.startswith('ann_file x.json: annotation id 442619') and '\n' not in msg
    assert '14 more problem(s)' in msg and 'kpt-plugin check-dataset x.json' in msg


def test_fast_path_keeps_the_values(shared_dir):
    ck = check_coco(_mini(shared_dir), 'x.json', num_keypoints=17)
    np.testing.assert_array_equal(ck.keypoints[0].ravel(), _mini(shared_dir)['annotations'][0]['keypoints'])
