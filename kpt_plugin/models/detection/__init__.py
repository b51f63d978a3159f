"""PP-PicoDet (PaddleDetection) in plain PyTorch, registered into mmdet's ``MODELS``.

The network (:class:`LCNet`, :class:`LCPAN`, :class:`PicoHeadV2` with its decoding and ppdet's NMS) is plain
``torch.nn`` code importing neither mmdet nor mmengine; :class:`PicoDet` (``picodet.py``) is the mmdet detector
around it and registers the parts. Names load on first use.
"""
from ..._lazy import lazy_exports

__all__ = ['LCNet', 'LCPAN', 'PicoHeadV2', 'PicoDet', 'PPDetDataPreprocessor', 'multiclass_nms',
           'batched_multiclass_nms', 'preprocess_image']
__getattr__, __dir__ = lazy_exports(__name__, dict(
    LCNet='.lcnet', LCPAN='.lcpan', PicoHeadV2='.pico_head', PicoDet='.picodet', PPDetDataPreprocessor='.picodet',
    multiclass_nms='.nms', batched_multiclass_nms='.nms', preprocess_image='.preprocess'))
