"""The PicoDet detector for mmdet: ppdet's input normalisation and a thin ``SingleStageDetector``.

This is the only module of the package that imports ``mmdet.models``; that import needs ``mmcv.ops`` (mmcv-lite
lacks the compiled ops; kpt_plugin's compat layer provides a stand-in). mmdet's ``MODELS`` registry imports
``mmdet.models`` on its first lookup anyway, so building any of these modules from a config needs it too; the
network classes themselves (``LCNet``, ``LCPAN``, ``PicoHeadV2``) are plain ``torch.nn`` modules, registered here
(the predictor builds them without mmdet: :mod:`kpt_plugin.inference.detector`).
"""
import torch
from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS
from mmengine.model import BaseDataPreprocessor

from .lcnet import LCNet
from .lcpan import LCPAN
from .pico_head import PicoHeadV2
from .preprocess import normalize_tensor

for _part in (LCNet, LCPAN, PicoHeadV2):
    MODELS.register_module(module=_part)


@MODELS.register_module()
class PPDetDataPreprocessor(BaseDataPreprocessor):
    """Batch, BGR -> RGB and ppdet's ``NormalizeImage`` (bit-identical to ppdet; see ``preprocess.py``).

    mmdet's ``DetDataPreprocessor`` computes ``(x - 255 * mean) / (255 * std)`` in float32, which differs from
    ppdet's input by float rounding; this one repeats ppdet's arithmetic. Inputs must share one size (the
    pipeline resizes to a fixed square), so there is no padding.

    Args:
        bgr_to_rgb (bool): flip the channels of the packed (BGR, as loaded by cv2) images.
        non_blocking (bool): as :class:`mmengine.model.BaseDataPreprocessor`.
    """

    def __init__(self, bgr_to_rgb=True, non_blocking=False):
        super().__init__(non_blocking=non_blocking)
        self.bgr_to_rgb = bgr_to_rgb

    def forward(self, data, training=False):
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            sizes = sorted({tuple(x.shape) for x in inputs})
            if len(sizes) > 1:
                raise ValueError(f'PPDetDataPreprocessor: images of different sizes {sizes}; the test pipeline '
                                 'must resize every image to the same square (Resize keep_ratio=False)')
            inputs = torch.stack(list(inputs))
        if self.bgr_to_rgb:
            inputs = inputs[:, [2, 1, 0]]
        inputs = normalize_tensor(inputs)
        samples = data.get('data_samples')
        for sample in samples or ():
            shape = tuple(inputs.shape[-2:])
            sample.set_metainfo(dict(batch_input_shape=shape, pad_shape=shape))
        return dict(inputs=inputs, data_samples=samples)


@MODELS.register_module()
class PicoDet(SingleStageDetector):
    """PP-PicoDet (ppdet ``PicoDet``): backbone -> neck -> :class:`PicoHeadV2`, inference only.

    ``predict`` returns ``DetDataSample``s whose ``pred_instances`` hold ``bboxes`` (original-image pixels with
    ``rescale=True``), ``scores`` and ``labels`` after ppdet's MultiClassNMS (``test_cfg.nms``). A dict
    ``data_preprocessor`` is built from mmdet's registry, so ``PPDetDataPreprocessor`` needs no scope prefix.
    """

    def __init__(self, backbone, neck, bbox_head, train_cfg=None, test_cfg=None, data_preprocessor=None,
                 init_cfg=None):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
