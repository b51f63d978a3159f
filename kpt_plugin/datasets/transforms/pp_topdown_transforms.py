"""PaddleDetection's top-down box -> center/scale and UDP crop, in ppdet's exact arithmetic.

MMPose's ``GetBBoxCenterScale`` + ``TopdownAffine(use_udp=True)`` compute the same geometry, but in
another float order and re-fixing the aspect ratio inside the affine; at 256x192 that moves the crop
by up to 0.15 px. These two transforms reproduce ppdet's float32/float64 steps (ppdet ran on numpy
1.x, whose scalar promotion rules differ from numpy 2, so every dtype below is explicit), on the functions of
:mod:`.pp_crop` (which the predict path imports without MMPose).
"""
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmpose.registry import TRANSFORMS

from .pp_crop import PIXEL_STD, pp_box_to_center_scale, pp_udp_warp_matrix  # noqa: F401 (re-exported)

@TRANSFORMS.register_module()
class PPGetBBoxCenterScale(BaseTransform):
    """ppdet's box -> center/scale (aspect padding, x1.25, float32 rounding order).

    Required keys: ``bbox`` (N, 4) xyxy. Keep it float64 for ppdet parity: ``PPCocoDataset`` stores
    GT boxes with ppdet's pixel-inclusive clipping (``x2 = min(W-1, x1 + w - 1)``) and detector
    boxes as ``x + w``; the width is recovered as ``x2 - x1`` exactly as ppdet computes it.

    Added keys: ``bbox_center`` float32 (N, 2); ``bbox_scale`` float32 (N, 2) in pixels
    (ppdet's ``scale * 200``, MMPose's convention), already padded to ``input_size``'s aspect ratio.

    Args:
        input_size (tuple): model input (w, h); fixes the aspect ratio.
        padding (float): box enlargement. Defaults to 1.25 (ppdet).
        pixel_std (float): ppdet's scale unit. Defaults to 200.
    """

    def __init__(self, input_size: Tuple[int, int], padding: float = 1.25,
                 pixel_std: float = PIXEL_STD) -> None:
        super().__init__()
        if len(input_size) != 2 or min(input_size) <= 0:
            raise ValueError(f'PPGetBBoxCenterScale: input_size must be (w, h) > 0, got {input_size}')
        self.input_size = tuple(int(v) for v in input_size)
        self.padding = padding
        self.pixel_std = pixel_std

    def transform(self, results: Dict) -> Optional[dict]:
        bbox = np.asarray(results['bbox'], dtype=np.float64).reshape(-1, 4)
        aspect_ratio = self.input_size[0] * 1.0 / self.input_size[1]
        centers, scales = [], []
        for x1, y1, x2, y2 in bbox:
            c, s = pp_box_to_center_scale((x1, y1, x2 - x1, y2 - y1), aspect_ratio, self.padding,
                                          self.pixel_std)
            centers.append(c)
            scales.append(s * np.float32(self.pixel_std))
        results['bbox_center'] = np.stack(centers).astype(np.float32)
        results['bbox_scale'] = np.stack(scales).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, padding={self.padding}, '
                f'pixel_std={self.pixel_std})')


@TRANSFORMS.register_module()
class PPTopdownAffine(BaseTransform):
    """ppdet's ``TopDownAffine(use_udp=True)``: UDP warp of the box to ``input_size``.

    Unlike MMPose's ``TopdownAffine`` it does not re-fix the aspect ratio of ``bbox_scale`` (ppdet's
    scale is already padded, and re-fixing changes it in the last float32 bit).

    Required keys: ``img``, ``bbox_center`` (1, 2), ``bbox_scale`` (1, 2) px; optional
    ``bbox_rotation`` (1,) degrees, ``keypoints`` (1, K, 2).
    Added keys: ``input_size``, ``input_center``, ``input_scale``, ``transformed_keypoints``.

    Args:
        input_size (tuple): crop (w, h).
        use_udp (bool): only ``True`` (PP-TinyPose's setting) is implemented.
    """

    def __init__(self, input_size: Tuple[int, int], use_udp: bool = True) -> None:
        super().__init__()
        if len(input_size) != 2 or min(input_size) <= 0:
            raise ValueError(f'PPTopdownAffine: input_size must be (w, h) > 0, got {input_size}')
        if not use_udp:
            raise NotImplementedError('PPTopdownAffine: only use_udp=True (PP-TinyPose) is implemented; '
                                      "use mmpose's TopdownAffine for the non-UDP crop")
        self.input_size = tuple(int(v) for v in input_size)
        self.use_udp = use_udp

    def transform(self, results: Dict) -> Optional[dict]:
        if np.shape(results['bbox_center'])[0] != 1:
            raise ValueError('PPTopdownAffine crops one instance per sample; got '
                             f'{np.shape(results["bbox_center"])[0]} boxes')
        center = np.asarray(results['bbox_center'][0], dtype=np.float32)
        scale = np.asarray(results['bbox_scale'][0], dtype=np.float32)
        rot = float(results['bbox_rotation'][0]) if 'bbox_rotation' in results else 0.
        mat = pp_udp_warp_matrix(center, scale, self.input_size, rot)
        w, h = self.input_size
        warp = lambda im: cv2.warpAffine(im, mat, (w, h), flags=cv2.INTER_LINEAR)  # noqa: E731
        results['img'] = [warp(im) for im in results['img']] if isinstance(
            results['img'], list) else warp(results['img'])

        if results.get('keypoints', None) is not None:
            kpts = np.asarray(results['keypoints'], dtype=np.float32)
            homog = np.concatenate([kpts, np.ones(kpts.shape[:-1] + (1, ), np.float32)], axis=-1)
            transformed = results.get('transformed_keypoints')
            transformed = (kpts if transformed is None else np.asarray(transformed)).copy()
            transformed[..., :2] = homog @ mat.T
            results['transformed_keypoints'] = transformed
        else:
            results['transformed_keypoints'] = np.zeros([])
            results['keypoints_visible'] = np.ones((1, 1, 1))

        results['input_size'] = (w, h)
        results['input_center'] = center
        results['input_scale'] = scale
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(input_size={self.input_size}, use_udp={self.use_udp})'
