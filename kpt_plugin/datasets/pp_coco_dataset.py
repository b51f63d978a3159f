"""COCO top-down dataset with PaddleDetection's box convention and instance filter.

MMPose's ``CocoDataset`` clips a GT box as ``x2 = x + w``; ppdet (``KeypointTopDownCocoDataset``)
clips it pixel-inclusively, ``x2 = min(W - 1, x1 + max(0, w - 1))``. The half-pixel difference in
center and the 1.25-1.67 px difference in the padded scale move some joints by 20-60 px, so the
evaluation needs ppdet's boxes. ``PPCocoDataset`` keeps everything else of ``CocoDataset`` (meta
info, data_prefix, bbox_file mode, ``filter_cfg=dict(bbox_score_thr=...)``) and adds clear errors
for bad inputs.
"""
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from mmengine.fileio import exists, get_local_path
from mmengine.logging import print_log
from mmpose.datasets.datasets.body.coco_dataset import CocoDataset
from mmpose.registry import DATASETS

from ..errors import DatasetError
from .coco_schema import check_coco, check_detections, load_json, ppdet_clean_bbox, ppdet_filter, raise_first

#: the name earlier releases exported
PPDatasetError = DatasetError
__all__ = ['PPCocoDataset', 'PPDatasetError', 'load_json_file', 'ppdet_clean_bbox']


def load_json_file(path: str, what: str):
    """Load a json file (local or any mmengine backend) with one clear error for a missing or malformed file.

    Args:
        path: file path.
        what: what the file is, for the message (``'ann_file'``, ``'bbox_file'``).
    """
    if not path or not exists(path):
        raise DatasetError(f'{what} {path!r} does not exist: check data_root / {what} '
                           '(override with --cfg-options).')
    with get_local_path(path) as local_path:
        data, problem = load_json(local_path, file=path)
    if problem is not None:
        raise DatasetError(f'{what} {problem}')
    return data


@DATASETS.register_module()
class PPCocoDataset(CocoDataset):
    """COCO keypoints, top-down, instances and boxes exactly as PaddleDetection's evaluation.

    Ground-truth mode (no ``bbox_file``) keeps an annotation iff it is not crowd, its ``area`` > 0,
    ppdet's clipped box is non-empty and ``max(keypoints) > 0``; the box is stored (float64, xyxy)
    as ``[x1, y1, x2, y2]`` with ppdet's pixel-inclusive ``x2``, so ``PPGetBBoxCenterScale`` recovers
    ppdet's width ``x2 - x1`` exactly. Detector mode (``bbox_file``, a COCO detection results
    json) keeps category-1 boxes unclipped as ppdet does; their score threshold is
    ``filter_cfg=dict(bbox_score_thr=...)`` (ppdet's ``image_thre``; kept when score >= thr).

    Bad inputs raise :class:`PPDatasetError` (one line: file, entry, fix) at construction, before any
    inference: a missing/malformed json, and whatever :func:`~kpt_plugin.datasets.coco_schema.check_coco`
    rejects (duplicate image/annotation ids, annotations of unlisted images, non-numeric or wrongly sized
    boxes/keypoints, no usable instance) or ``check_detections`` rejects in ``bbox_file``. Image files
    that do not exist raise too, listing them, unless ``missing_images='skip'`` (their instances are
    then dropped with a warning and count as misses in COCO AP). Crowd annotations, annotations without
    keypoints or with empty boxes, and detections on images absent from ``ann_file`` are skipped and
    counted in one log line. An image
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
        """The ann_file, checked by :func:`~kpt_plugin.datasets.coco_schema.check_coco` (first problem raised)."""
        data = load_json_file(self.ann_file, 'ann_file')
        gt_boxes = not self.bbox_file  # detector boxes need only the image list
        ck = check_coco(data, self.ann_file, num_keypoints=self.metainfo['num_keypoints'],
                        need_annotations=gt_boxes, need_instances=gt_boxes)
        raise_first(ck.problems, 'ann_file')
        if data.get('categories'):
            self._metainfo['CLASSES'] = data['categories']
        self._img_sizes = {k: (v['height'], v['width']) for k, v in ck.images.items()}
        return data

    def _load_annotations(self) -> Tuple[List[dict], List[dict]]:
        """Instances in ppdet's order (images as listed, then annotations as listed)."""
        data = self._load_coco_dict()
        anns_by_img: Dict[int, list] = {}
        for ann in data['annotations']:
            anns_by_img.setdefault(ann['image_id'], []).append(ann)
        instance_list, image_list = [], []
        for img in data['images']:
            img_id = img['id']
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
        """ppdet's ``_load_coco_keypoint_annotations`` filter and box for one (schema-checked) annotation."""
        ann, img = raw_data_info['raw_ann_info'], raw_data_info['raw_img_info']
        reason, clean, area = ppdet_filter(ann, img)
        if reason:
            self.skipped[reason] += 1
            return None
        x1, y1, w, h = clean
        _kpts = np.array(ann['keypoints'], dtype=np.float32).reshape(1, -1, 3)
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
        raise_first(check_detections(dets, self.bbox_file), 'bbox_file')
        images = {img['id']: img for img in data['images']}
        num_kpts = self.metainfo['num_keypoints']
        data_list = []
        for det in dets:
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
            raise DatasetError(f'{type(self).__name__}: no instance to evaluate in {src!r} (after the '
                               'filters above): check the file and filter_cfg.')
        return data_list

    def _check_image_files(self, data_list: List[dict]) -> List[dict]:
        paths = {d['img_path'] for d in data_list}
        missing = sorted(p for p in paths if '://' not in p and not osp.isfile(p))
        if not missing:
            return data_list
        shown = ', '.join(missing[:5]) + (f' ... ({len(missing)} in all)' if len(missing) > 5 else '')
        if self.missing_images == 'error':
            raise DatasetError(f'{len(missing)} image file(s) listed in {self.ann_file!r} do not exist: '
                               f'{shown}. Fix data_root/data_prefix, or set missing_images="skip" to '
                               'evaluate without them (they then count as misses).')
        print_log(f'PPCocoDataset: skipping the instances of {len(missing)} missing image file(s): {shown}',
                  logger='current', level=30)
        missing = set(missing)
        return [d for d in data_list if d['img_path'] not in missing]
