"""Datasets and transforms reproducing PaddleDetection's top-down evaluation, and the COCO keypoint file checker.
Names load on first use (:mod:`kpt_plugin.registration` registers the dataset and transforms)."""
from .._lazy import lazy_exports

__all__ = ['PPCocoDataset', 'PPDatasetError', 'ppdet_clean_bbox', 'PPGetBBoxCenterScale',
           'PPTopdownAffine', 'Problem', 'check_coco', 'check_detections']
__getattr__, __dir__ = lazy_exports(__name__, dict(
    PPCocoDataset='.pp_coco_dataset', PPDatasetError='.pp_coco_dataset', ppdet_clean_bbox='.pp_coco_dataset',
    PPGetBBoxCenterScale='.transforms', PPTopdownAffine='.transforms', Problem='.coco_schema',
    check_coco='.coco_schema', check_detections='.coco_schema'))
