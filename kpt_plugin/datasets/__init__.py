"""Datasets and transforms reproducing PaddleDetection's top-down evaluation, and the COCO keypoint file checker."""
from .coco_schema import Problem, check_coco, check_detections
from .pp_coco_dataset import PPCocoDataset, PPDatasetError, ppdet_clean_bbox
from .transforms import PPGetBBoxCenterScale, PPTopdownAffine

__all__ = ['PPCocoDataset', 'PPDatasetError', 'ppdet_clean_bbox', 'PPGetBBoxCenterScale',
           'PPTopdownAffine', 'Problem', 'check_coco', 'check_detections']
