"""Predict-time geometry: the SAME box -> crop as the evaluation pipeline, and ppdet's normalisation.

The box -> center/scale and UDP warp come from :mod:`kpt_plugin.datasets.transforms.pp_crop`
(ppdet's exact arithmetic), so keypoints predicted for a box equal the eval path's for that box. The
back-projection is ppdet's non-UDP inverse (:func:`kpt_plugin.codecs.pp_decode.ppdet_decode`).
"""
import cv2
import numpy as np

from kpt_plugin.datasets.transforms.pp_crop import PIXEL_STD, pp_box_to_center_scale, pp_udp_warp_matrix

__all__ = ['PIXEL_STD', 'BOX_PADDING', 'MEAN', 'STD', 'box_center_scale', 'whole_image_center_scale', 'crop',
           'normalize', 'crops_to_tensor']

#: ppdet's person-box enlargement (``_box2cs``)
BOX_PADDING = 1.25
#: ImageNet mean/std on [0, 1] RGB (ppdet ``NormalizeImage``, ``infer_cfg.yml``)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float64)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float64)


def box_center_scale(box_xyxy, input_size, padding=BOX_PADDING):
    """ppdet's center (2,) and scale (2,) (units of 200 px) of a person box ``[x1, y1, x2, y2]``.

    Args:
        box_xyxy: box corners in image pixels (float64 numbers).
        input_size: model input (w, h).
        padding: enlargement (1.25 for person boxes).
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy[:4])
    return pp_box_to_center_scale((x1, y1, x2 - x1, y2 - y1), input_size[0] / input_size[1], padding)


def whole_image_center_scale(width, height, input_size):
    """Center/scale for "the whole image is one person" (no boxes): the image, padded to the input's aspect
    ratio, no enlargement, so nothing of the image is cut off."""
    return box_center_scale((0., 0., float(width), float(height)), input_size, padding=1.0)


def crop(img, center, scale, input_size):
    """ppdet ``TopDownAffine(use_udp=True)``: warp the box (center, scale in 200 px units) to ``input_size``."""
    scale_px = np.asarray(scale, dtype=np.float32) * np.float32(PIXEL_STD)
    mat = pp_udp_warp_matrix(np.asarray(center, np.float32), scale_px, tuple(input_size))
    return cv2.warpAffine(img, mat, (int(input_size[0]), int(input_size[1])), flags=cv2.INTER_LINEAR)


def normalize(crop_bgr):
    """ppdet ``NormalizeImage(is_scale=True)`` + ``Permute`` on BGR uint8 crop(s) -> float32 RGB.

    (H, W, 3) -> (3, H, W); a stack (N, H, W, 3) -> (N, 3, H, W). Same float order as ppdet: float32 x (1/255),
    then mean/std subtracted/divided in float64 and stored back into float32.
    """
    x = crop_bgr[..., ::-1].astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    x = (x - MEAN).astype(np.float32)
    x = (x / STD).astype(np.float32)
    axes = (2, 0, 1) if x.ndim == 3 else (0, 3, 1, 2)
    return np.ascontiguousarray(x.transpose(axes))


_LUT = None


def _normalize_lut():
    # uint8 in -> float32 out is a per-channel function of 256 values: tabulate normalize() itself, so the table
    # holds exactly ppdet's numbers. Kept in BGR order, shaped for cv2.LUT (1, 256, 3).
    global _LUT
    if _LUT is None:
        ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)  # (256, 1, 3) BGR
        rgb = normalize(ramp)[:, :, 0]  # (3 RGB, 256)
        _LUT = np.ascontiguousarray(rgb[::-1].T[None])
    return _LUT


def crops_to_tensor(crops):
    """Stack BGR uint8 crops into a normalised (N, 3, H, W) float32 batch (= :func:`normalize`, by table)."""
    if not len(crops):
        return None
    stack = np.stack(crops)
    n, h, w, _ = stack.shape
    # one cv2.LUT pass (uint8 -> float32 table lookup) then BGR->RGB + HWC->CHW in one copy: ~3x faster than
    # numpy fancy indexing per channel
    table = cv2.LUT(stack.reshape(n * h, w, 3), _normalize_lut()).reshape(n, h, w, 3)
    return np.ascontiguousarray(table[..., ::-1].transpose(0, 3, 1, 2))
