"""Bad-annotation cases shared by the dataset, tools/test.py and check-dataset tests (one validator, one table).

Each case mutates ``coco_val2017_mini/test_coco.json`` (or, in ``DET_CASES``, its detection results); the fragments
are what the one-line message must contain besides the file's path: the entry, what is wrong and the fix.
Test files load it by path (the suite runs with ``--import-mode=importlib``: test folders are not packages).
"""
import json
import os.path as osp


def _ann(i, **kw):
    return lambda d: d['annotations'][i].update(**kw)


def _all_keypoints_zero(d):
    for a in d['annotations']:
        a['keypoints'] = [0] * 51


def _string_keypoints(d):
    d['annotations'][0]['keypoints'] = [str(v) for v in d['annotations'][0]['keypoints']]


def _short_keypoints(d):
    d['annotations'][2]['keypoints'] = d['annotations'][2]['keypoints'][:-3]


def _nan_keypoint(d):
    d['annotations'][4]['keypoints'][0] = float('nan')


#: name -> (mutation of the annotation dict, fragments of the message)
CASES = {
    'duplicate annotation id': (
        _ann(1, id=442619),
        ['annotation id 442619 (annotations[1], image id 40083)', 'duplicate annotation id',
         'first at annotations[0]', 'give each annotation a unique "id"']),
    'duplicate image id': (
        lambda d: d['images'][1].update(id=785),
        ['image id 785 (images[1], 000000040083.jpg)', 'duplicate image id 785', 'give each image a unique "id"']),
    'string keypoints': (
        _string_keypoints,
        ['annotation id 442619 (annotations[0], image id 785)', '"keypoints" must be a list of numbers',
         "got '367' at [0]", 'as numbers']),
    'annotation of an unlisted image': (
        _ann(0, image_id=123456789),
        ['annotation id 442619 (annotations[0], image id 123456789)', 'no image with this id in "images"',
         'add the image to "images" or fix "image_id"']),
    'no usable instance': (
        _all_keypoints_zero,
        ['no usable person annotation at all', "14 annotation(s); ppdet's filter skips 14 no keypoints",
         'add non-crowd person annotations with labelled keypoints']),
    'non-numeric bbox': (
        _ann(3, bbox=['275.17', 126.5, 10.69, 68.26]),
        ['annotation id 1202706 (annotations[3], image id 40083)', '"bbox" must be [x, y, w, h] numbers',
         "'275.17'", 'write the box as 4 numbers']),
    'wrong keypoint count': (
        _short_keypoints,
        ['annotation id 230195 (annotations[2], image id 40083)', '48 keypoint values, expected 3 x 17 = 51',
         'give every joint']),
    'NaN keypoint': (
        _nan_keypoint,
        ['annotation id 460541 (annotations[4], image id 196141)', '"keypoints" must be a list of numbers',
         'got nan at [0]']),
    'image without a size': (
        lambda d: d['images'][2].pop('width'),
        ["images[2]: lacks ['width']", 'each image needs "id", "file_name", "width" and "height"']),
    'string image id': (
        lambda d: d['images'][0].update(id='785'),
        ["image id 785 (images[0], 000000000785.jpg)", "\"id\" must be an integer, got '785'", 'integer image ids']),
    'string area': (
        _ann(5, area='big'),
        ['annotation id 488308 (annotations[5], image id 196141)', '"area" must be a non-negative number',
         'fix "area"']),
}

#: name -> (mutation of the detection list, fragments); the annotation file is the unmodified one
DET_CASES = {
    'string score': (lambda d: d[1].update(score='0.9'), ['entry 1 needs "image_id", "bbox" [x, y, w, h] and "score"',
                                                          "'score': '0.9'"]),
    'short bbox': (lambda d: d[0].update(bbox=[1.0, 2.0]), ['entry 0 needs', "'bbox': [1.0, 2.0]"]),
}

MINI = ('data', 'coco_val2017_mini')


def write_case(shared_dir, name, path):
    """Write case ``name`` of :data:`CASES` (None: the unmodified file) to ``path``; returns ``path``."""
    with open(osp.join(shared_dir, *MINI, 'test_coco.json')) as f:
        data = json.load(f)
    if name is not None:
        CASES[name][0](data)
    with open(path, 'w') as f:
        json.dump(data, f)
    return str(path)


def write_det_case(shared_dir, name, path):
    """Write case ``name`` of :data:`DET_CASES` (a mutated copy of the detection results) to ``path``."""
    with open(osp.join(shared_dir, *MINI, 'test_coco_det_AP_H_56.json')) as f:
        dets = json.load(f)
    DET_CASES[name][0](dets)
    with open(path, 'w') as f:
        json.dump(dets, f)
    return str(path)

