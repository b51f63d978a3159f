"""PaddleDetection-faithful COCO keypoint evaluation."""
from .pp_coco_metric import PPCocoMetric, pp_oks_nms, pp_rescore
from .progress_hook import PPTestProgressHook

__all__ = ['PPCocoMetric', 'pp_oks_nms', 'pp_rescore', 'PPTestProgressHook']
