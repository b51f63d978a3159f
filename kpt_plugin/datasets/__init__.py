"""Datasets and transforms reproducing PaddleDetection's top-down evaluation."""
from .pp_coco_dataset import PPCocoDataset, PPDatasetError, ppdet_clean_bbox
from .transforms import PPGetBBoxCenterScale, PPTopdownAffine

__all__ = ['PPCocoDataset', 'PPDatasetError', 'ppdet_clean_bbox', 'PPGetBBoxCenterScale',
           'PPTopdownAffine']
