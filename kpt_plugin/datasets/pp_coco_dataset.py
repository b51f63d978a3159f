"""COCO top-down dataset with PaddleDetection's box convention and instance filter.

MMPose's ``CocoDataset`` clips a GT box as ``x2 = x + w``; ppdet (``KeypointTopDownCocoDataset``)
clips it pixel-inclusively, ``x2 = min(W - 1, x1 + max(0, w - 1))``. The half-pixel difference in
center and the 1.25-1.67 px difference in the padded scale move some joints by 20-60 px, so the
evaluation needs ppdet's boxes. ``PPCocoDataset`` keeps everything else of ``CocoDataset`` (meta
info, data_prefix, bbox_file mode, ``filter_cfg=dict(bbox_score_thr=...)``) and adds clear errors
for bad inputs.
"""
import json
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from mmengine.fileio import exists, get_local_path
from mmengine.logging import print_log
from mmpose.datasets.datasets.body.coco_dataset import CocoDataset
from mmpose.registry import DATASETS


class PPDatasetError(ValueError):
    """A dataset input (annotation json, bbox file, image folder) is unusable."""


def load_json_file(path: str, what: str):
    """Load a json file with one clear error for a missing or malformed file.

    Args:
        path: file path (local or any mmengine backend).
        what: what the file is, for the message (``'ann_file'``, ``'bbox_file'``).
    """
    if not path or not exists(path):
        raise PPDatasetError(f'{what} {path!r} does not exist: check data_root / {what} '
                             '(override with --cfg-options).')
    try:
        with get_local_path(path) as local_path, open(local_path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise PPDatasetError(f'{what} {path!r} is not valid JSON ({e}); re-download or '
                             're-export it.') from None
    except UnicodeDecodeError as e:
        raise PPDatasetError(f'{what} {path!r} is not a UTF-8 text/JSON file ({e}).') from None


def ppdet_clean_bbox(bbox, img_w: float, img_h: float) -> Optional[Tuple[float, float, float, float]]:
    """ppdet's GT box clipping (pixel-inclusive). Returns (x1, y1, w, h) or None if it is empty."""
    x, y, w, h = (float(v) for v in bbox[:4])
    x1 = max(0.0, x)
    y1 = max(0.0, y)
    x2 = min(img_w - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(img_h - 1.0, y1 + max(0.0, h - 1.0))
    if x2 >= x1 and y2 >= y1:
        return x1, y1, x2 - x1, y2 - y1
    return None


@DATASETS.register_module()
class PPCocoDataset(CocoDataset):
    """COCO keypoints, top-down, instances and boxes exactly as PaddleDetection's evaluation.

    Ground-truth mode (no ``bbox_file``) keeps an annotation iff it is not crowd, its ``area`` > 0,
    ppdet's clipped box is non-empty and ``max(keypoints) > 0``; the box is stored (float64, xyxy)
    as ``[x1, y1, x2, y2]`` with ppdet's pixel-inclusive ``x2``, so ``PPGetBBoxCenterScale`` recovers
    ppdet's width ``x2 - x1`` exactly. Detector mode (``bbox_file``, a COCO detection results
    json) keeps category-1 boxes unclipped as ppdet does; their score threshold is
    ``filter_cfg=dict(bbox_score_thr=...)`` (ppdet's ``image_thre``; kept when score >= thr).

    Bad inputs: a missing/malformed json, an image list with no usable instance, or box records
    without the required keys raise :class:`PPDatasetError` at construction (before any
    inference). Image files that do not exist raise too, listing them, unless
    ``missing_images='skip'`` (their instances are then dropped with a warning and count as
    misses in COCO AP). Crowd annotations, annotations without keypoints or with empty boxes, and
    detections on images absent from ``ann_file`` are skipped and counted in one log line. An image
    that exists but cannot be decoded does not stop the run: a warning names it and its instances
    go through the pipeline as a black image with a NaN box score, which ``PPCocoMetric`` drops.

    Args:
        missing_images (str): ``'error'`` (default) or ``'skip'``.
        check_images (bool): check that image files exist (local paths only). Defaults to True.
        **kwargs: as :class:`mmpose.datasets.CocoDataset`.
    """

    def __init__(self, *args, missing_images: str = 'error', check_images: bool = True, **kwargs):
        if missing_images not in ('error', 'skip'):
            raise ValueError(f"PPCocoDataset: missing_images must be 'error' or 'skip', got {missing_images!r}")
        self.missing_images = missing_images
        self.check_images = check_images
        self.skipped = Counter()
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ loading
    def _load_coco_dict(self) -> Dict:
        data = load_json_file(self.ann_file, 'ann_file')
        if not isinstance(data, dict) or not isinstance(data.get('images'), list):
            raise PPDatasetError(f'ann_file {self.ann_file!r} is not a COCO annotation file: '
                                 'expected a JSON object with an "images" list.')
        if not data['images']:
            raise PPDatasetError(f'ann_file {self.ann_file!r} has an empty "images" list: nothing to '
                                 'evaluate.')
        for key in ('annotations', 'categories'):
            if not isinstance(data.get(key, []), list):
                raise PPDatasetError(f'ann_file {self.ann_file!r}: "{key}" must be a list.')
        for i, img in enumerate(data['images']):
            missing = [k for k in ('id', 'file_name', 'width', 'height') if k not in img]
            if missing:
                raise PPDatasetError(f'ann_file {self.ann_file!r}: images[{i}] lacks {missing}.')
        if data.get('categories'):
            self._metainfo['CLASSES'] = data['categories']
        return data

    def _load_annotations(self) -> Tuple[List[dict], List[dict]]:
        """Instances in ppdet's order (images as listed, then annotations as listed)."""
        data = self._load_coco_dict()
        if not isinstance(data.get('annotations'), list):
            raise PPDatasetError(f'ann_file {self.ann_file!r} has no "annotations" list: ground-truth '
                                 'box mode needs person annotations (or set bbox_file for detector boxes).')
        anns_by_img: Dict[int, list] = {}
        for i, ann in enumerate(data['annotations']):
            if not isinstance(ann, dict) or 'image_id' not in ann or 'id' not in ann:
                raise PPDatasetError(f'ann_file {self.ann_file!r}: annotations[{i}] lacks "id"/"image_id".')
            anns_by_img.setdefault(ann['image_id'], []).append(ann)
        images = {}
        for img in data['images']:
            images.setdefault(img['id'], img)
        self._img_sizes = {k: (v['height'], v['width']) for k, v in images.items()}
        instance_list, image_list = [], []
        for img_id, img in images.items():
            if img_id % self.sample_interval != 0:
                continue
            img = dict(img, img_id=img_id, img_path=osp.join(self.data_prefix['img'], img['file_name']))
            image_list.append(img)
            for ann in anns_by_img.get(img_id, []):
                info = self.parse_data_info(dict(raw_ann_info=ann, raw_img_info=img))
                if info:
                    instance_list.append(info)
        return instance_list, image_list

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        """ppdet's ``_load_coco_keypoint_annotations`` filter and box for one annotation."""
        ann, img = raw_data_info['raw_ann_info'], raw_data_info['raw_img_info']
        if ann.get('iscrowd', 0):
            self.skipped['crowd'] += 1
            return None
        kpts = ann.get('keypoints')
        if not kpts or max(kpts) == 0:
            self.skipped['no keypoints'] += 1
            return None
        num_kpts = self.metainfo['num_keypoints']
        bbox = ann.get('bbox')
        if (len(kpts) != 3 * num_kpts or not isinstance(bbox, (list, tuple)) or len(bbox) < 4):
            raise PPDatasetError(
                f'ann_file {self.ann_file!r}: annotation id {ann.get("id")} needs "bbox" [x, y, w, h] and '
                f'{3 * num_kpts} "keypoints" values (got {len(kpts)}).')
        clean = ppdet_clean_bbox(bbox, img['width'], img['height'])
        area = ann.get('area', None if clean is None else clean[2] * clean[3])
        if clean is None or not area or area <= 0:
            self.skipped['empty box/area'] += 1
            return None
        x1, y1, w, h = clean
        _kpts = np.array(kpts, dtype=np.float32).reshape(1, -1, 3)
        return {
            'img_id': ann['image_id'],
            'img_path': img['img_path'],
            'bbox': np.array([[x1, y1, x1 + w, y1 + h]], dtype=np.float64),
            'bbox_score': np.ones(1, dtype=np.float64),
            'num_keypoints': ann.get('num_keypoints', int(np.count_nonzero(_kpts[..., 2]))),
            'keypoints': _kpts[..., :2],
            'keypoints_visible': np.minimum(1, _kpts[..., 2]),
            'area': np.array(area, dtype=np.float32),
            'iscrowd': 0,
            'segmentation': ann.get('segmentation', None),
            'id': ann['id'],
            'category_id': np.array(ann.get('category_id', 1)),
            'raw_ann_info': ann,
        }

    def _get_topdown_data_infos(self, instance_list: List[Dict]) -> List[Dict]:
        # parse_data_info already applied ppdet's filter (MMPose's would also drop w == 0 boxes
        # and instances whose num_keypoints is 0, which ppdet keeps).
        return instance_list

    def _load_detection_results(self) -> List[dict]:
        """Detector boxes as ppdet's ``_load_coco_person_detection_results`` (float64, unclipped)."""
        data = self._load_coco_dict()
        dets = load_json_file(self.bbox_file, 'bbox_file')
        if not isinstance(dets, list):
            raise PPDatasetError(f'bbox_file {self.bbox_file!r} must be a COCO detection results list '
                                 '([{"image_id", "category_id", "bbox", "score"}, ...]).')
        images = {}
        for img in data['images']:
            images.setdefault(img['id'], img)
        self._img_sizes = {k: (v['height'], v['width']) for k, v in images.items()}
        num_kpts = self.metainfo['num_keypoints']
        data_list = []
        for i, det in enumerate(dets):
            if not isinstance(det, dict) or any(k not in det for k in ('image_id', 'bbox', 'score')) \
                    or len(det['bbox']) < 4:
                raise PPDatasetError(f'bbox_file {self.bbox_file!r}: entry {i} needs "image_id", '
                                     '"bbox" [x, y, w, h] and "score".')
            if det.get('category_id', 1) != 1:
                continue
            img = images.get(det['image_id'])
            if img is None:
                self.skipped['detections on images not in ann_file'] += 1
                continue
            x, y, w, h = (float(v) for v in det['bbox'][:4])
            data_list.append({
                'img_id': det['image_id'],
                'img_path': osp.join(self.data_prefix['img'], img['file_name']),
                'img_shape': (img['height'], img['width']),
                'bbox': np.array([[x, y, x + w, y + h]], dtype=np.float64),
                'bbox_score': np.array([float(det['score'])], dtype=np.float64),
                'keypoints': np.zeros((1, num_kpts, 2), dtype=np.float32),
                'keypoints_visible': np.ones((1, num_kpts), dtype=np.float32),
                'id': len(data_list),
            })
        return data_list

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except Exception:
            data_info = self.get_data_info(idx)
            if self._image_readable(data_info['img_path']):
                raise  # not an image problem: a real error
        print_log(f'PPCocoDataset: cannot decode image {data_info["img_path"]!r}; its instance is left out '
                  'of the evaluation (counts as a miss).', logger='current', level=30)
        h, w = data_info.get('img_shape') or self._image_size(data_info['img_id'])
        data_info['img'] = np.zeros((int(h), int(w), 3), np.uint8)
        data_info['bbox_score'] = np.full(1, np.nan)
        data_info['dataset'] = self
        return self.pipeline(data_info)

    @staticmethod
    def _image_readable(path: str) -> bool:
        try:
            with get_local_path(path) as local:
                return cv2.imread(local, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) is not None
        except Exception:
            return False

    def _image_size(self, img_id) -> Tuple[int, int]:
        return self._img_sizes[img_id]

    # ---------------------------------------------------------------- checking
    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        if self.skipped:
            print_log('PPCocoDataset: skipped ' + ', '.join(f'{n} {why}' for why, n in self.skipped.items())
                      + " (PaddleDetection's rules)", logger='current')
        if self.check_images:
            data_list = self._check_image_files(data_list)
        if not data_list:
            src = self.bbox_file or self.ann_file
            raise PPDatasetError(f'{type(self).__name__}: no instance to evaluate in {src!r} (after the '
                                 'filters above): check the file and filter_cfg.')
        return data_list

    def _check_image_files(self, data_list: List[dict]) -> List[dict]:
        paths = {d['img_path'] for d in data_list}
        missing = sorted(p for p in paths if '://' not in p and not osp.isfile(p))
        if not missing:
            return data_list
        shown = ', '.join(missing[:5]) + (f' ... ({len(missing)} in all)' if len(missing) > 5 else '')
        if self.missing_images == 'error':
            raise PPDatasetError(f'{len(missing)} image file(s) listed in {self.ann_file!r} do not exist: '
                                 f'{shown}. Fix data_root/data_prefix, or set missing_images="skip" to '
                                 'evaluate without them (they then count as misses).')
        print_log(f'PPCocoDataset: skipping the instances of {len(missing)} missing image file(s): {shown}',
                  logger='current', level=30)
        missing = set(missing)
        return [d for d in data_list if d['img_path'] not in missing]
