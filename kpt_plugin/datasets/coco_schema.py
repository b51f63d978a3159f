"""The one validator of COCO keypoint annotation files (and detection results), for :class:`PPCocoDataset`,
``tools/test.py`` (before the Runner) and ``kpt-plugin check-dataset``. Pure python + numpy (no MMPose); JSON content
only, image files are the callers' business. Findings are :class:`Problem` s (file, entry, what is wrong, what to
do): the dataset and tools/test.py raise the first as one line, check-dataset lists them all.

The default rejects what breaks evaluation/training or silently changes its result (duplicate ids, annotations of
unlisted images, non-numeric or wrongly sized values, no usable instance) and leaves what ppdet skips (crowd, no
keypoints, empty boxes) to its instance filter (:func:`ppdet_filter`), so valid data keeps ppdet's results.
``strict=True`` adds check-dataset's (PaddleX's) quality rules: categories with keypoint names, known category ids,
boxes and labelled keypoints inside the image, visibility in {0, 1, 2}.
"""
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import DatasetError

__all__ = ['Problem', 'CocoCheck', 'load_json', 'check_coco', 'check_detections', 'ppdet_clean_bbox',
           'ppdet_filter', 'raise_first']

BOX_TOLERANCE = 1.0  # px a box / keypoint may exceed the image in strict mode (COCO rounding)


@dataclass(frozen=True)
class Problem:
    """One finding in ``file``: ``what`` is wrong, ``fix`` says what to do; ``str()`` is ``FILE: ENTRY: WHAT; FIX``.

    ``entry`` names the record (``'annotation id 5 (annotations[3], image id 785)'``; '' for the whole file),
    ``section`` / ``index`` / ``entry_id`` locate it (``'annotations'``, 3, 5; None where not applicable).
    """
    file: str
    what: str
    fix: str = ''
    entry: str = ''
    section: Optional[str] = None  # 'images', 'annotations', 'categories' or 'detections'
    index: Optional[int] = None
    entry_id: object = None

    def __str__(self):
        return f'{self.file}: ' + (f'{self.entry}: ' if self.entry else '') + self.what + \
            (f'; {self.fix}' if self.fix else '')


@dataclass
class CocoCheck:
    """The outcome of :func:`check_coco`: problems (errors), warnings, and what the callers reuse."""
    file: str
    problems: List[Problem] = field(default_factory=list)
    warnings: List[Problem] = field(default_factory=list)
    images: Dict[object, dict] = field(default_factory=dict)  # id -> record, valid first occurrences, file order
    keypoints: Dict[int, np.ndarray] = field(default_factory=dict)  # annotations index -> (K, 3), faultless ones
    num_keypoints: Optional[int] = None
    keypoint_names: List[str] = field(default_factory=list)
    skeleton: List[Tuple[int, int]] = field(default_factory=list)  # 0-based joint pairs
    num_classes: int = 0
    usable: int = 0  # instances ppdet's filter keeps
    skipped: Counter = field(default_factory=Counter)  # ppdet's filter: reason -> instances it skips

    def add(self, what, fix='', warning=False, **where):
        (self.warnings if warning else self.problems).append(Problem(self.file, what, fix, **where))


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_id(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(values):
    """``values`` (a list) as a float64 vector; else the index of its first non-number (-1: not a list)."""
    if not isinstance(values, list):
        return -1
    try:  # fast path (COCO train: 150k x 51 values)
        arr = np.asarray(values)
        if arr.ndim == 1 and arr.dtype.kind in 'iuf' and np.isfinite(arr).all():
            return arr.astype(np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged nesting
        pass
    bad = next((i for i, v in enumerate(values) if not _is_number(v)), None)
    return np.asarray(values, dtype=np.float64) if bad is None else bad


def load_json(path, file=None):
    """Read a local JSON file; returns ``(data, None)`` or ``(None, Problem)``. ``file`` names it in messages."""
    file = file or path
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f), None
    except FileNotFoundError:
        return None, Problem(file, 'does not exist', 'check the path (data_root / ann_file / bbox_file)')
    except json.JSONDecodeError as e:
        return None, Problem(file, f'is not valid JSON ({e})', 're-export or re-download it')
    except UnicodeDecodeError as e:
        return None, Problem(file, f'is not a UTF-8 text/JSON file ({e})', 'give a COCO .json file')
    except OSError as e:
        return None, Problem(file, f'cannot be read ({e})', 'check the path and its permissions')


def ppdet_clean_bbox(bbox, img_w: float, img_h: float) -> Optional[Tuple[float, float, float, float]]:
    """ppdet's GT box clipping (pixel-inclusive). Returns (x1, y1, w, h) or None if it is empty."""
    x, y, w, h = (float(v) for v in bbox[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(img_w - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(img_h - 1.0, y1 + max(0.0, h - 1.0))
    if x2 >= x1 and y2 >= y1:
        return x1, y1, x2 - x1, y2 - y1
    return None


def ppdet_filter(ann: dict, img: dict):
    """ppdet's ``_load_coco_keypoint_annotations`` rule for one (schema-valid) annotation: ``(reason, box, area)``,
    ``reason`` None (kept), ``'crowd'``, ``'no keypoints'`` or ``'empty box/area'``; ``box`` is ppdet's clipped one."""
    if ann.get('iscrowd', 0):
        return 'crowd', None, None
    kpts = ann.get('keypoints')
    if not kpts or max(kpts) == 0:
        return 'no keypoints', None, None
    clean = ppdet_clean_bbox(ann['bbox'], img['width'], img['height'])
    area = ann.get('area', None if clean is None else clean[2] * clean[3])
    if clean is None or not area or area <= 0:
        return 'empty box/area', clean, area
    return None, clean, area


def _check_top(ck, data, strict):
    if not isinstance(data, dict):
        ck.add('expected a JSON object with "images", "annotations" and "categories" lists',
               'give a COCO keypoint annotation file (not a results list)')
        return False
    for key in ('images', 'annotations', 'categories'):
        # the dataset's metainfo stands for the categories; "annotations" is need_annotations' business (below)
        if (key == 'images' or key in data or strict and key == 'categories') and not isinstance(data.get(key), list):
            ck.add(f'"{key}" is missing or not a list', f'a COCO keypoint file has a "{key}" list')
    if ck.problems:
        return False
    if not data['images']:
        ck.add('empty "images" list: nothing to evaluate or train on', 'list the images (and their annotations)')
        return False
    return True


def _check_categories(ck, categories, strict):
    """Keypoint names, skeleton and number of classes; problems only in strict mode (the dataset has metainfo)."""
    add = ck.add if strict else (lambda *args, **kwargs: None)
    seen, sizes = set(), set()
    for i, cat in enumerate(categories):
        where = dict(entry=f'categories[{i}]', section='categories', index=i)
        if not isinstance(cat, dict) or not _is_id(cat.get('id')):
            add('has no integer "id"', 'give each category an "id" (person: 1)', **where)
            continue
        where['entry_id'] = cat['id']
        if cat['id'] in seen:
            add(f'duplicate category id {cat["id"]}', 'give each category a unique "id"', **where)
        seen.add(cat['id'])
        names = cat.get('keypoints')
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            add(f'category {cat["id"]} ({cat.get("name")!r}) has no "keypoints" name list',
                'a keypoint dataset needs e.g. "keypoints": ["nose", "left_eye", ...]', **where)
            continue
        sizes.add(len(names))
        if ck.keypoint_names:
            continue
        ck.keypoint_names = names
        for j, link in enumerate(cat.get('skeleton') or []):
            if isinstance(link, list) and len(link) == 2 and all(_is_id(v) and 1 <= v <= len(names) for v in link):
                ck.skeleton.append((link[0] - 1, link[1] - 1))
            else:
                add(f'skeleton[{j}] = {link!r} is not a pair of 1-based keypoint indices in 1..{len(names)}',
                    'fix or drop that link', **where)
    if not categories:
        add('"categories" is empty', 'add the person category with its "keypoints" names', section='categories')
    if len(sizes) > 1:
        add(f'categories disagree on the number of keypoints: {sorted(sizes)}', 'use one layout', section='categories')
    ck.num_classes = len(seen)
    return seen


def _check_images(ck, images, strict):
    """Valid image records into ``ck.images``; returns every image id listed (valid or not)."""
    first_id, first_name = {}, {}
    for i, img in enumerate(images):
        where = dict(entry=f'images[{i}]', section='images', index=i)
        if not isinstance(img, dict):
            ck.add('is not an object', 'each image is {"id", "file_name", "width", "height"}', **where)
            continue
        missing = [k for k in ('id', 'file_name', 'width', 'height') if k not in img]
        if missing:
            ck.add(f'lacks {missing}', 'each image needs "id", "file_name", "width" and "height"', **where)
            continue
        where.update(entry=f'image id {img["id"]} (images[{i}], {img["file_name"]})', entry_id=img['id'])
        if not _is_id(img['id']):
            ck.add(f'"id" must be an integer, got {img["id"]!r}', 'use integer image ids', **where)
            continue
        if img['id'] in first_id:
            ck.add(f'duplicate image id {img["id"]} (first at images[{first_id[img["id"]]}])',
                   'give each image a unique "id" (annotations and results refer to images by it)', **where)
            continue
        first_id[img['id']] = i
        if not isinstance(img['file_name'], str) or not img['file_name']:
            ck.add(f'"file_name" must be a non-empty string, got {img["file_name"]!r}', 'fix "file_name"', **where)
            continue
        if strict and img['file_name'] in first_name:
            ck.add(f'image {img["file_name"]} is listed twice (first at images[{first_name[img["file_name"]]}])',
                   'list each image file once', **where)
            continue
        first_name[img['file_name']] = i
        if not (_is_number(img['width']) and _is_number(img['height']) and img['width'] > 0 and img['height'] > 0):
            ck.add(f'width/height must be positive numbers, got {img["width"]!r} x {img["height"]!r}',
                   'write the image size in pixels', **where)
            continue
        ck.images[img['id']] = img
    return set(first_id)


def _check_annotation(ck, i, ann, first_ann, categories, listed, strict):
    """Add one annotation's problems; returns its (K, 3) keypoints (None when missing or faulty)."""
    where = dict(entry=f'annotations[{i}]', section='annotations', index=i)
    if not isinstance(ann, dict):
        ck.add('is not an object', 'each annotation is {"id", "image_id", "bbox", "keypoints", ...}', **where)
        return None
    missing = [k for k in ('id', 'image_id') if k not in ann]
    if missing:
        ck.add(f'lacks {missing}', 'each annotation needs an "id" and the "image_id" of its image', **where)
        return None
    where.update(entry=f'annotation id {ann["id"]} (annotations[{i}], image id {ann["image_id"]})', entry_id=ann['id'])
    before = len(ck.problems)
    if not _is_id(ann['id']):
        ck.add(f'"id" must be an integer, got {ann["id"]!r}', 'use integer annotation ids', **where)
    elif ann['id'] in first_ann:
        ck.add(f'duplicate annotation id {ann["id"]} (first at annotations[{first_ann[ann["id"]]}])',
               'give each annotation a unique "id" (COCO evaluation keeps one annotation per id, '
               'so duplicates change the AP)', **where)
    else:
        first_ann[ann['id']] = i
    if not _is_id(ann['image_id']) or ann['image_id'] not in listed:
        ck.add('no image with this id in "images"',
               'add the image to "images" or fix "image_id" (otherwise the annotation is silently lost)', **where)
        return None
    if strict and (not _is_id(ann.get('category_id')) or ann['category_id'] not in categories):
        ck.add(f'category_id {ann.get("category_id")!r} is not in "categories"', 'fix "category_id"', **where)
    if ann.get('iscrowd', 0) not in (0, 1):
        ck.add(f'"iscrowd" must be 0 or 1, got {ann["iscrowd"]!r}', 'fix "iscrowd"', **where)
    if 'area' in ann and not (_is_number(ann['area']) and ann['area'] >= 0):
        ck.add(f'"area" must be a non-negative number, got {ann["area"]!r}', 'fix "area" (box or mask area)', **where)
    img = ck.images.get(ann['image_id'])
    bbox = ann.get('bbox')
    box = _numbers(bbox) if isinstance(bbox, list) and len(bbox) == 4 else -1
    if not isinstance(box, np.ndarray):
        ck.add(f'"bbox" must be [x, y, w, h] numbers, got {bbox!r}', 'write the box as 4 numbers in pixels', **where)
    elif strict and (box[2] <= 0 or box[3] <= 0):
        ck.add(f'bbox {bbox} has a non-positive width/height', 'fix the box or drop the annotation', **where)
    elif strict and img is not None:
        x, y, w, h = box
        W, H = img['width'], img['height']
        if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > W + BOX_TOLERANCE or y + h > H + BOX_TOLERANCE:
            ck.add(f'bbox {bbox} lies outside the {W}x{H} image', 'fix the box or the image size', **where)
    kpts = ann.get('keypoints')
    if not kpts and not strict:
        return None  # ppdet skips it ('no keypoints')
    K, arr = ck.num_keypoints, _numbers(kpts)
    if not isinstance(arr, np.ndarray):
        got = f'{kpts[arr]!r} at [{arr}]' if arr >= 0 else type(kpts).__name__
        ck.add(f'"keypoints" must be a list of numbers, got {got}', 'write [x1, y1, v1, ...] as numbers', **where)
        return None
    if len(arr) != 3 * (K or len(arr) // 3) or not len(arr):
        expected = f'3 x {K} = {3 * K}' if K else 'a multiple of 3'
        ck.add(f'{len(arr)} keypoint values, expected {expected} (x, y, visibility)',
               'give every joint of the dataset\'s layout', **where)
        return None
    arr = arr.reshape(-1, 3)
    if strict:
        bad_vis = sorted({v for v in arr[:, 2].tolist() if v not in (0, 1, 2)})
        if bad_vis:
            ck.add(f'visibility values {bad_vis} (allowed: 0 unlabelled, 1 occluded, 2 visible)',
                   'fix the third value of each joint', **where)
            return None
        labelled = arr[:, 2] > 0
        xy = arr[labelled, :2]
        if img is not None and ((xy < -BOX_TOLERANCE).any() or (xy[:, 0] > img['width'] + BOX_TOLERANCE).any()
                                or (xy[:, 1] > img['height'] + BOX_TOLERANCE).any()):
            ck.add(f'labelled keypoints lie outside the {img["width"]}x{img["height"]} image',
                   'fix the keypoints or the image size', **where)
        if 'num_keypoints' in ann and ann['num_keypoints'] != int(labelled.sum()):
            ck.add(f'num_keypoints is {ann["num_keypoints"]} but {int(labelled.sum())} keypoints are labelled',
                   'fix "num_keypoints"', warning=True, **where)
    return arr if len(ck.problems) == before else None


def check_coco(data, file, *, num_keypoints=None, strict=False, need_annotations=True, need_instances=True):
    """Check a loaded COCO keypoint annotation dict.

    Args:
        data: the parsed JSON; ``file``: where it came from (for the messages).
        num_keypoints: joints per instance (the dataset's metainfo); None: from the categories' names.
        strict: add check-dataset's dataset-quality rules (see the module docstring).
        need_annotations / need_instances: require an "annotations" list / one instance ppdet's filter keeps
            (ground-truth boxes and training need both, detector boxes neither).

    Returns:
        CocoCheck: no ``problems`` means the file is usable.
    """
    ck = CocoCheck(file)
    if not _check_top(ck, data, strict):
        return ck
    categories = _check_categories(ck, data.get('categories') or [], strict)
    ck.num_keypoints = num_keypoints or (len(ck.keypoint_names) if ck.keypoint_names else None)
    listed = _check_images(ck, data['images'], strict)
    if need_annotations and not isinstance(data.get('annotations'), list):
        ck.add('"annotations" is missing or not a list',
               'ground-truth boxes and training need the annotations (or set bbox_file for detector boxes)')
        return ck
    annotations = data.get('annotations') or []
    first_ann = {}
    for i, ann in enumerate(annotations):
        before = len(ck.problems)
        arr = _check_annotation(ck, i, ann, first_ann, categories, listed, strict)
        img = ck.images.get(ann['image_id']) if len(ck.problems) == before else None
        if img is None:
            continue  # faulty (reported above) or on a faulty image record
        if arr is not None:
            ck.keypoints[i] = arr
        reason = ppdet_filter(ann, img)[0]
        if reason:
            ck.skipped[reason] += 1
        else:
            ck.usable += 1
    if need_instances and not ck.usable and ck.images:
        summary = ', '.join(f'{n} {why}' for why, n in ck.skipped.items())
        ck.add(f'no usable person annotation at all: no instance to evaluate or train on ({len(annotations)} '
               f'annotation(s)' + (f"; ppdet's filter skips {summary}" if summary else '') + ')',
               'add non-crowd person annotations with labelled keypoints and a non-empty box (area > 0)',
               section='annotations')
    return ck


def check_detections(dets, file) -> List[Problem]:
    """Check a COCO detection results list (``bbox_file``); detections of images not in ann_file are allowed."""
    if not isinstance(dets, list):
        return [Problem(file, 'must be a COCO detection results list ([{"image_id", "category_id", "bbox", '
                        '"score"}, ...])', "give the detector's results json", section='detections')]
    problems = []
    for i, det in enumerate(dets):
        rec = det if isinstance(det, dict) else {}
        box = _numbers(rec.get('bbox'))
        if not (_is_id(rec.get('image_id')) and isinstance(box, np.ndarray) and len(box) >= 4
                and _is_number(rec.get('score'))):
            got = {k: rec.get(k) for k in ('image_id', 'bbox', 'score')} if rec else det
            problems.append(Problem(file, f'entry {i} needs "image_id", "bbox" [x, y, w, h] and "score" (got {got})',
                                    'each entry is {"image_id", "category_id", "bbox", "score"} with numbers',
                                    section='detections', index=i))
    return problems


def raise_first(problems, what='ann_file'):
    """Raise the first problem as a one-line :class:`DatasetError` (saying how many more there are)."""
    if not problems:
        return
    more = len(problems) - 1
    tail = f' ({more} more problem(s) in this file: `kpt-plugin check-dataset {problems[0].file}` lists them)' \
        if more else ''
    raise DatasetError(f'{what} {problems[0]}{tail}')
