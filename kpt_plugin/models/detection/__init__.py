"""PP-PicoDet (PaddleDetection) in plain PyTorch, registered into mmdet's ``MODELS``.

The network (:class:`LCNet`, :class:`LCPAN`, :class:`PicoHeadV2` with its decoding and ppdet's NMS) is plain
``torch.nn`` code importing only ``mmdet.registry`` and ``mmengine``; :class:`PicoDet` (``picodet.py``) is the
mmdet detector around it.
"""
from .lcnet import LCNet
from .lcpan import LCPAN
from .nms import batched_multiclass_nms, multiclass_nms
from .pico_head import PicoHeadV2
from .picodet import PicoDet, PPDetDataPreprocessor
from .preprocess import preprocess_image

__all__ = ['LCNet', 'LCPAN', 'PicoHeadV2', 'PicoDet', 'PPDetDataPreprocessor', 'multiclass_nms',
           'batched_multiclass_nms', 'preprocess_image']
