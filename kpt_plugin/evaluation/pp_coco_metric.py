"""COCO keypoint AP exactly as PaddleDetection's ``KeyPointTopDownCOCOEval``.

Differences from MMPose's ``CocoMetric`` that change the numbers:

* the results json carries no ``bbox``, so the COCO loader takes each detection's area from its
  keypoint extent (MMPose writes the box, which moves AP(L) by up to 0.016);
* rescoring (box score x mean of keypoint scores above 0.2) accumulates in float64 and OKS-NMS (0.9)
  uses ppdet's float64 sigmas and ``area = prod(scale * 200)``;
* the COCO evaluator gets the float64 COCO sigmas (MMPose passes float32 ones).
"""
import json
import os.path as osp
import tempfile
from collections import OrderedDict, defaultdict
from typing import Dict, List, Sequence

import numpy as np
from mmengine.fileio import dump
from mmengine.logging import MMLogger
from mmpose.evaluation.metrics import CocoMetric
from mmpose.registry import METRICS
from xtcocotools.cocoeval import COCOeval

from weight_convert.io import atomic_output

# ppdet's default (float64) COCO-17 OKS sigmas.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                        .89]) / 10.0
STATS_NAMES = ['AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75', 'AR (M)', 'AR (L)']


def pp_rescore(keypoint_scores: np.ndarray, box_score: float, thr: float = 0.2) -> float:
    """ppdet's rescoring: box score x mean of the keypoint scores above ``thr`` (float64)."""
    # ppdet adds numpy float32 scalars to a Python 0 one by one; numpy 1.x promoted that to float64
    total, valid = 0.0, 0
    for s in np.asarray(keypoint_scores, dtype=np.float32).reshape(-1):
        if s > thr:
            total += float(s)
            valid += 1
    mean = total / valid if valid else 0.0
    return float(mean * float(np.asarray(box_score).reshape(-1)[0]))


def pp_oks_iou(g: np.ndarray, d: np.ndarray, a_g: float, a_d: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """OKS of one (K*3) pose ``g`` against each row of ``d`` (M, K*3) as ppdet's ``oks_iou``."""
    variances = (sigmas * 2)**2
    xg, yg = g[0::3], g[1::3]
    ious = np.zeros(d.shape[0])
    for n in range(d.shape[0]):
        dx = d[n, 0::3] - xg
        dy = d[n, 1::3] - yg
        e = (dx**2 + dy**2) / variances / ((a_g + a_d[n]) / 2 + np.spacing(1)) / 2
        ious[n] = np.sum(np.exp(-e)) / e.shape[0] if e.shape[0] else 0.0
    return ious


def pp_oks_nms(instances: List[dict], thr: float, sigmas: np.ndarray) -> List[int]:
    """Greedy OKS-NMS (ppdet's ``oks_nms``): indices kept, highest score first."""
    if not instances:
        return []
    scores = np.array([inst['score'] for inst in instances])
    kpts = np.array([np.asarray(inst['keypoints']).reshape(-1) for inst in instances])
    areas = np.array([inst['area'] for inst in instances], dtype=np.float64)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        ovr = pp_oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[np.where(ovr <= thr)[0] + 1]
    return keep


@METRICS.register_module()
class PPCocoMetric(CocoMetric):
    """MMPose ``CocoMetric`` with PaddleDetection's rescoring, OKS-NMS and results json.

    Needs ``gt_instances.bbox_scales`` (pixels, float32) and ``bbox_scores`` from the pipeline
    (``PPGetBBoxCenterScale`` + ``PackPoseInputs``). The results json
    (``{outfile_prefix}.keypoints.json``) lists, per image, ``image_id``, ``category_id``,
    ``keypoints``, ``score``, and ppdet's ``center`` / ``scale`` (in 200 px units) - no ``bbox``.

    Args:
        keypoint_score_thr (float): ppdet's ``in_vis_thre``. Defaults to 0.2.
        nms_thr (float): ppdet's ``oks_thre``. Defaults to 0.9.
        nms_mode (str): ``'oks_nms'`` (ppdet) or ``'none'``.
        score_mode (str): only ``'bbox_keypoint'`` (ppdet).
        **kwargs: as :class:`mmpose.evaluation.CocoMetric`.
    """

    def __init__(self, *args, score_mode: str = 'bbox_keypoint', nms_mode: str = 'oks_nms',
                 keypoint_score_thr: float = 0.2, nms_thr: float = 0.9, **kwargs) -> None:
        if score_mode != 'bbox_keypoint':
            raise ValueError(f"PPCocoMetric reproduces ppdet's 'bbox_keypoint' rescoring only, got {score_mode!r}")
        if nms_mode not in ('oks_nms', 'none'):
            raise ValueError(f"PPCocoMetric: nms_mode must be 'oks_nms' (ppdet) or 'none', got {nms_mode!r}")
        super().__init__(*args, score_mode=score_mode, nms_mode=nms_mode,
                         keypoint_score_thr=keypoint_score_thr, nms_thr=nms_thr, **kwargs)

    def _sigmas(self) -> np.ndarray:
        sigmas = np.asarray(self.dataset_meta['sigmas'], dtype=np.float64)
        if sigmas.shape == COCO_SIGMAS.shape and np.allclose(sigmas, COCO_SIGMAS, atol=1e-6):
            return COCO_SIGMAS  # exactly ppdet's values, not float32 ones widened
        return sigmas

    def process(self, data_batch: Sequence[dict], data_samples: Sequence[dict]) -> None:
        if any('bbox_scales' not in s.get('gt_instances', {}) for s in data_samples):
            raise KeyError('PPCocoMetric needs gt_instances.bbox_scales: put PPGetBBoxCenterScale '
                           'and PackPoseInputs in the test pipeline.')
        start = len(self.results)
        super().process(data_batch, data_samples)
        for (pred, _), sample in zip(self.results[start:], data_samples):
            pred.pop('bbox', None)
            gt = sample['gt_instances']
            scales = np.asarray(gt['bbox_scales'], dtype=np.float32)
            # ppdet: area = prod(scale * 200) in float32
            pred['areas'] = np.prod(scales, axis=1)
            pred['scales'] = scales
            pred['centers'] = np.asarray(sample.get('input_center', gt.get('bbox_centers', np.zeros(2))),
                                         dtype=np.float32).reshape(-1, 2)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger: MMLogger = MMLogger.get_current_instance()
        if not results:
            raise ValueError('PPCocoMetric: no prediction to evaluate (empty dataset?).')
        preds, _ = zip(*results)
        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, 'results')
        else:
            outfile_prefix = self.outfile_prefix
        if self.coco is None:
            raise ValueError('PPCocoMetric needs ann_file (or a dataset that registered one).')

        sigmas = self._sigmas()
        # group by image in dataset order (ppdet's); an instance id seen twice (padding of
        # distributed runs) is kept once
        kpts = defaultdict(dict)
        unreadable = 0
        for pred in preds:
            box_scores = np.asarray(pred['bbox_scores'], np.float64).reshape(-1)
            for idx, keypoints in enumerate(pred['keypoints']):
                if not np.isfinite(box_scores[idx]):
                    unreadable += 1  # PPCocoDataset's marker for an image it could not decode
                    continue
                inst_id = pred['id'] if np.ndim(pred['id']) == 0 else pred['id'][idx]
                kpts[pred['img_id']].setdefault(inst_id, {
                    'img_id': pred['img_id'],
                    'category_id': pred['category_id'],
                    'keypoints': np.concatenate(
                        [np.asarray(keypoints, np.float32),
                         np.asarray(pred['keypoint_scores'][idx], np.float32)[:, None]], axis=-1),
                    'score': pp_rescore(pred['keypoint_scores'][idx], box_scores[idx], self.keypoint_score_thr),
                    'area': float(pred['areas'][idx]),
                    'center': pred['centers'][min(idx, len(pred['centers']) - 1)],
                    'scale': pred['scales'][idx],
                })
        if unreadable:
            logger.warning(f'PPCocoMetric: {unreadable} instance(s) on unreadable images left out (misses).')
        valid_kpts = OrderedDict()
        for img_id, by_id in kpts.items():
            instances = list(by_id.values())
            if self.nms_mode == 'oks_nms':
                keep = pp_oks_nms(instances, self.nms_thr, sigmas)
                instances = [instances[i] for i in keep] if keep else instances
            valid_kpts[img_id] = instances

        self.results2json(valid_kpts, outfile_prefix=outfile_prefix)
        if self.format_only:
            logger.info(f'results are saved in {osp.dirname(outfile_prefix)}')
            return {}
        eval_results = OrderedDict(self._do_python_keypoint_eval(outfile_prefix))
        if tmp_dir is not None:
            tmp_dir.cleanup()
        return eval_results

    def results2json(self, keypoints: Dict[int, list], outfile_prefix: str) -> str:
        """Write ppdet-style results (no ``bbox``) atomically to ``{outfile_prefix}.keypoints.json``."""
        cat_results = []
        for img_kpts in keypoints.values():
            for inst in img_kpts:
                cat_results.append({
                    'image_id': int(inst['img_id']),
                    'category_id': int(inst['category_id']),
                    'keypoints': inst['keypoints'].reshape(-1).astype(np.float64).tolist(),
                    'score': float(inst['score']),
                    'center': np.asarray(inst['center'], np.float64).tolist(),
                    'scale': (np.asarray(inst['scale'], np.float32) / np.float32(200.0)).astype(np.float64).tolist(),
                })
        res_file = f'{outfile_prefix}.keypoints.json'
        with atomic_output(res_file) as tmp:
            dump(cat_results, tmp, file_format='json', sort_keys=True, indent=4)
        return res_file

    def _do_python_keypoint_eval(self, outfile_prefix: str) -> list:
        res_file = f'{outfile_prefix}.keypoints.json'
        if not self._load_json_list(res_file):
            # COCO's loader cannot take an empty list; no detection means zero AP/AR
            MMLogger.get_current_instance().warning('PPCocoMetric: no detection kept; all metrics are 0.')
            return [(name, 0.0) for name in STATS_NAMES]
        coco_det = self.coco.loadRes(res_file)
        coco_eval = COCOeval(self.coco, coco_det, self.iou_type, self._sigmas(), self.use_area)
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        return list(zip(STATS_NAMES, coco_eval.stats))

    @staticmethod
    def _load_json_list(path: str) -> list:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
