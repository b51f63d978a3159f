"""PP-TinyPose's heatmap codec: PaddleDetection's DARK targets and ``HRNetPostProcess`` decode.

MMPose's ``MSRAHeatmap(unbiased=True, blur_kernel_size=3)`` is close but not the same function:
non-positive peaks decode to -1 (ppdet: 0), the in-bounds test for targets differs at the border, and
ppdet's decode mixes float32 and float64 in a specific order. This module reproduces ppdet (as run on
numpy 1.26, where ``0.5 * np.float32`` is float64 and float32 arrays absorb float64 scalars) so decoded
keypoints match PaddleDetection's within 1e-3 px on real heatmaps.
"""
from typing import Optional, Tuple

import cv2
import numpy as np
from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS

__all__ = ['PPTinyPoseHeatmap', 'ppdet_dark_targets', 'ppdet_get_max_preds', 'ppdet_refine', 'ppdet_decode',
           'ppdet_transform_preds', 'ppdet_back_projections']


def ppdet_dark_targets(keypoints, keypoints_visible, heatmap_size, input_size, sigma):
    """ppdet ``ToHeatmapsTopDown_DARK``: full (untruncated) Gaussians at ``keypoint / stride``.

    Args:
        keypoints (np.ndarray): (K, 2) in input (crop) pixels.
        keypoints_visible (np.ndarray): (K, ) visibility, > 0.5 means labelled.
        heatmap_size, input_size: (w, h).
        sigma (float): Gaussian sigma in heatmap pixels.

    Returns:
        tuple: heatmaps (K, h, w) float32 and target weights (K, ) float32 (0 when the Gaussian's
        3-sigma window lies outside the heatmap).
    """
    hm_w, hm_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.array(input_size, dtype=np.float64) / np.array([hm_w, hm_h], dtype=np.float64)
    num = keypoints.shape[0]
    weights = np.asarray(keypoints_visible, dtype=np.float32).reshape(num).copy()
    target = np.zeros((num, hm_h, hm_w), dtype=np.float32)
    tmp = sigma * 3
    xs = np.arange(hm_w, dtype=np.float32)
    ys = np.arange(hm_h, dtype=np.float32)[:, None]
    for k in range(num):
        mu_x = np.float32(keypoints[k, 0]) / stride[0]
        mu_y = np.float32(keypoints[k, 1]) / stride[1]
        # ppdet truncates toward zero before the bounds test
        if (int(mu_x - tmp) >= hm_w or int(mu_y - tmp) >= hm_h or int(mu_x + tmp + 1) < 0
                or int(mu_y + tmp + 1) < 0):
            weights[k] = 0
            continue
        if weights[k] > 0.5:
            # float32 throughout, as numpy 1.x evaluated ppdet's expression
            dx = xs - np.float32(mu_x)
            dy = ys - np.float32(mu_y)
            target[k] = np.exp(-(dx**2 + dy**2) / np.float32(2 * sigma**2))
    return target, weights


def ppdet_get_max_preds(heatmaps):
    """Argmax per joint; joints with a non-positive maximum get coordinate (0, 0).

    Args:
        heatmaps (np.ndarray): (N, K, h, w) float32.

    Returns:
        tuple: coords (N, K, 2) float32 in heatmap pixels, maxvals (N, K, 1) float32.
    """
    n, k, _, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, 2).reshape(n, k, 1)
    maxvals = np.amax(flat, 2).reshape(n, k, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % w
    preds[:, :, 1] = np.floor(preds[:, :, 1] / w)
    preds *= np.tile(maxvals > 0.0, (1, 1, 2)).astype(np.float32)
    return preds, maxvals


def blur_padded(heatmaps, kernel=3):
    """ppdet's DARK blur: per map, zero-pad by ``kernel // 2``, ``cv2.GaussianBlur`` (sigma 0) in float64.

    All padded maps are stacked into ONE image: a pixel inside a map only reaches its own zero ring, so one OpenCV
    call gives the same numbers as one call per map. Returns the padded (N*K, h+2b, w+2b) float64 result.
    """
    n, k, h, w = heatmaps.shape
    b = (kernel - 1) // 2
    p = np.zeros((n * k, h + 2 * b, w + 2 * b))
    p[:, b:h + b, b:w + b] = heatmaps.reshape(n * k, h, w)
    return cv2.GaussianBlur(p.reshape(n * k * (h + 2 * b), w + 2 * b), (kernel, kernel), 0).reshape(p.shape)


def _blur_keep_max(heatmaps, kernel):
    # the blurred maps in float32, rescaled (float32) so each keeps its original maximum
    n, k, h, w = heatmaps.shape
    b = (kernel - 1) // 2
    out = blur_padded(heatmaps, kernel)[:, b:h + b, b:w + b].reshape(n, k, h, w).astype(np.float32)
    out *= (heatmaps.reshape(n, k, -1).max(axis=2) / out.reshape(n, k, -1).max(axis=2))[..., None, None]
    return out


def ppdet_refine(heatmaps, coords, use_dark=True, kernel=3):
    """Sub-pixel refinement of ``coords`` (in place and returned), as ppdet's ``get_final_preds``.

    DARK: Taylor expansion on the log of the blurred map, only for peaks with 1 < x < w-2 and
    1 < y < h-2 and a non-singular Hessian. Without DARK: a quarter-pixel step towards the higher neighbour.
    """
    n, k, h, w = heatmaps.shape
    if not use_dark:
        for i in range(n):
            for j in range(k):
                hm = heatmaps[i, j]
                px = int(np.floor(coords[i, j, 0] + 0.5))
                py = int(np.floor(coords[i, j, 1] + 0.5))
                if 1 < px < w - 1 and 1 < py < h - 1:
                    diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
                    coords[i, j] += np.sign(diff) * .25
        return coords
    logs = np.log(np.maximum(_blur_keep_max(heatmaps, kernel), np.float32(1e-10)))
    for i in range(n):
        for j in range(k):
            px, py = int(coords[i, j, 0]), int(coords[i, j, 1])
            if not (1 < px < w - 2 and 1 < py < h - 2):
                continue
            hm = logs[i, j]
            f64 = np.float64
            # differences of float32 samples in float32, scaled/combined in float64 (numpy-1 promotion)
            dx = 0.5 * f64(hm[py, px + 1] - hm[py, px - 1])
            dy = 0.5 * f64(hm[py + 1, px] - hm[py - 1, px])
            dxx = 0.25 * (f64(hm[py, px + 2]) - 2 * f64(hm[py, px]) + f64(hm[py, px - 2]))
            dxy = 0.25 * f64(hm[py + 1, px + 1] - hm[py - 1, px + 1] - hm[py + 1, px - 1] + hm[py - 1, px - 1])
            dyy = 0.25 * (f64(hm[py + 2, px]) - 2 * f64(hm[py, px]) + f64(hm[py - 2, px]))
            if dxx * dyy - dxy**2 != 0:
                hessian_inv = np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]))
                coords[i, j] += -(hessian_inv @ np.array([dx, dy]))
    return coords


def ppdet_back_projections(center, scale, heatmap_size):
    """ppdet's *non-UDP* inverse affine (heatmap -> image) of every box: (N, 2, 3) float64.

    ppdet's construction points (stored as float32) for (center, scale*200) -> heatmap, then
    ``cv2.getAffineTransform(dst, src)`` per box.

    Args:
        center (np.ndarray): (N, 2) box centers in image pixels.
        scale (np.ndarray): (N, 2) box sizes in units of 200 px.
        heatmap_size: (w, h).
    """
    hm_w, hm_h = heatmap_size
    center = np.asarray(center, np.float64).reshape(-1, 2)
    src_w = np.asarray(scale, np.float64).reshape(-1, 2)[:, 0] * 200
    src = np.zeros((len(center), 3, 2), dtype=np.float32)
    src[:, 0] = center
    src[:, 1] = center + np.stack([np.zeros_like(src_w), src_w * -0.5], 1)
    d = src[:, 0] - src[:, 1]
    src[:, 2] = src[:, 1] + np.stack([-d[:, 1], d[:, 0]], 1)
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [hm_w * 0.5, hm_h * 0.5]
    dst[1] = np.array([hm_w * 0.5, hm_h * 0.5]) + np.array([0., hm_w * -0.5])
    d = dst[0] - dst[1]
    dst[2] = dst[1] + np.array([-d[1], d[0]], dtype=np.float32)
    return np.stack([cv2.getAffineTransform(dst, s) for s in src])


def ppdet_transform_preds(coords, center, scale, heatmap_size):
    """ppdet's back-projection of one box's keypoints (:func:`ppdet_back_projections`).

    Args:
        coords (np.ndarray): (K, 2) heatmap pixels.
        center (np.ndarray): (2, ) box center in image pixels.
        scale (np.ndarray): (2, ) box size in units of 200 px.
        heatmap_size: (w, h).

    Returns:
        np.ndarray: (K, 2) float64 image coordinates.
    """
    trans = ppdet_back_projections(center, scale, heatmap_size)[0]
    pts = np.concatenate([coords.astype(np.float64), np.ones((coords.shape[0], 1))], axis=1)
    return pts @ trans.T


def ppdet_decode(heatmaps, center, scale, use_dark=True, kernel=3):
    """PaddleDetection ``HRNetPostProcess.get_final_preds``.

    Args:
        heatmaps (np.ndarray): (N, K, h, w) float32 (not modified).
        center (np.ndarray): (N, 2) box centers (image pixels).
        scale (np.ndarray): (N, 2) box sizes in units of 200 px.
        use_dark (bool): DARK refinement (PP-TinyPose) or the quarter-offset rule.

    Returns:
        tuple: preds (N, K, 2) float32 image coordinates, maxvals (N, K, 1) float32.
    """
    heatmaps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    coords, maxvals = ppdet_get_max_preds(heatmaps)
    coords = ppdet_refine(heatmaps, coords, use_dark=use_dark, kernel=kernel)
    preds = coords.copy()
    h, w = heatmaps.shape[2:]
    for i in range(coords.shape[0]):
        preds[i] = ppdet_transform_preds(coords[i], center[i], scale[i], (w, h))
    return preds, maxvals


@KEYPOINT_CODECS.register_module()
class PPTinyPoseHeatmap(BaseKeypointCodec):
    """PP-TinyPose heatmaps: ppdet's DARK targets (stride = input / heatmap) and ppdet's decode.

    Args:
        input_size (tuple): crop size (w, h), e.g. (96, 128).
        heatmap_size (tuple): heatmap size (w, h), e.g. (24, 32).
        sigma (float): Gaussian sigma (1 for 128x96, 2 for 256x192 in PP-TinyPose).
        use_dark (bool): DARK refinement at decode (PP-TinyPose: True).
        blur_kernel_size (int): DARK blur kernel (ppdet: 3).

    ``decode`` returns keypoints in input (crop) pixels like every MMPose codec, so MMPose's
    ``TopdownPoseEstimator`` maps them back to the image.
    """

    label_mapping_table = dict(keypoint_weights='keypoint_weights')
    field_mapping_table = dict(heatmaps='heatmaps')

    def __init__(self, input_size: Tuple[int, int], heatmap_size: Tuple[int, int], sigma: float,
                 use_dark: bool = True, blur_kernel_size: int = 3) -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        self.heatmap_size = tuple(heatmap_size)
        self.sigma = sigma
        self.use_dark = use_dark
        self.blur_kernel_size = blur_kernel_size
        self.scale_factor = (np.array(input_size) / np.array(heatmap_size)).astype(np.float32)

    def encode(self, keypoints: np.ndarray, keypoints_visible: Optional[np.ndarray] = None) -> dict:
        """Encode (1, K, 2) input-space keypoints into (K, h, w) heatmaps and (1, K) weights."""
        assert keypoints.shape[0] == 1, f'{type(self).__name__} encodes one instance at a time'
        if keypoints_visible is None:
            keypoints_visible = np.ones(keypoints.shape[:2], dtype=np.float32)
        heatmaps, weights = ppdet_dark_targets(keypoints[0], keypoints_visible[0], self.heatmap_size,
                                               self.input_size, self.sigma)
        return dict(heatmaps=heatmaps, keypoint_weights=weights[None])

    def decode(self, encoded: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Decode (K, h, w) heatmaps into (1, K, 2) input-space keypoints and (1, K) scores."""
        heatmaps = np.asarray(encoded, dtype=np.float32)[None]
        coords, maxvals = ppdet_get_max_preds(heatmaps)
        coords = ppdet_refine(heatmaps, coords, use_dark=self.use_dark, kernel=self.blur_kernel_size)
        return coords * self.scale_factor, maxvals[..., 0]
