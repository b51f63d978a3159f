"""PaddleDetection's box -> center/scale and UDP warp matrix, in ppdet's exact arithmetic (numpy only).

The evaluation transforms (:mod:`.pp_topdown_transforms`) and the predict path (:mod:`kpt_plugin.inference.preprocess`)
share these, so keypoints predicted for a box equal the evaluation's for that box.
"""
from typing import Sequence, Tuple

import numpy as np

__all__ = ['PIXEL_STD', 'pp_box_to_center_scale', 'pp_udp_warp_matrix']

PIXEL_STD = 200.0


def pp_box_to_center_scale(box_xywh: Sequence[float], aspect_ratio: float, padding: float = 1.25,
                           pixel_std: float = PIXEL_STD) -> Tuple[np.ndarray, np.ndarray]:
    """ppdet's ``_box2cs``: one (x, y, w, h) box -> center (2,) and scale (2,) in units of ``pixel_std``.

    Args:
        box_xywh: box corner and size in image pixels (Python/float64 numbers).
        aspect_ratio: crop width / height (0.75 for 96x128 and 192x256).
        padding: enlargement applied to the aspect-padded box (ppdet: 1.25).
        pixel_std: the scale unit (ppdet: 200 px).

    Returns:
        tuple: ``center`` float32 (2,), ``scale`` float32 (2,) in units of ``pixel_std``.
    """
    x, y, w, h = (float(v) for v in box_xywh[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    if center[0] != -1:
        # float32 array times a Python float stays float32 (as in ppdet)
        scale = scale * np.float32(padding)
    return center, scale


def pp_udp_warp_matrix(center: np.ndarray, scale_px: np.ndarray, input_size: Tuple[int, int],
                       rot: float = 0.) -> np.ndarray:
    """ppdet's ``get_warp_matrix`` as called by ``TopDownAffine(use_udp=True)``.

    Args:
        center: float32 (2,) box center in image pixels.
        scale_px: float32 (2,) box size in pixels (ppdet's ``scale * 200``).
        input_size: crop size (w, h).
        rot: rotation in degrees.

    Returns:
        np.ndarray: float32 (2, 3) image -> crop matrix.
    """
    size_input = np.asarray(center, dtype=np.float32) * np.float32(2.0)
    # ppdet divides Python floats by numpy float32 scalars: numpy 1.x promoted those to float64.
    sx_in, sy_in = float(size_input[0]), float(size_input[1])
    tw, th = float(scale_px[0]), float(scale_px[1])
    theta = np.deg2rad(np.float64(rot))
    cos, sin = np.cos(theta), np.sin(theta)
    scale_x = (input_size[0] - 1.0) / tw
    scale_y = (input_size[1] - 1.0) / th
    matrix = np.zeros((2, 3), dtype=np.float32)
    matrix[0, 0] = cos * scale_x
    matrix[0, 1] = -sin * scale_x
    matrix[0, 2] = scale_x * (-0.5 * sx_in * cos + 0.5 * sy_in * sin + 0.5 * tw)
    matrix[1, 0] = sin * scale_y
    matrix[1, 1] = cos * scale_y
    matrix[1, 2] = scale_y * (-0.5 * sx_in * sin - 0.5 * sy_in * cos + 0.5 * th)
    return matrix
