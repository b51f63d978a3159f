"""PP-TinyPose's heatmap codec: PaddleDetection's DARK targets and ``HRNetPostProcess`` decode (from :mod:`.pp_decode`).

MMPose's ``MSRAHeatmap(unbiased=True, blur_kernel_size=3)`` is close but not the same function:
non-positive peaks decode to -1 (ppdet: 0), the in-bounds test for targets differs at the border, and
ppdet's decode mixes float32 and float64 in a specific order. This module reproduces ppdet (as run on
numpy 1.26, where ``0.5 * np.float32`` is float64 and float32 arrays absorb float64 scalars) so decoded
keypoints match PaddleDetection's within 1e-3 px on real heatmaps. The decode lives in :mod:`.pp_decode`, which
imports no MMPose (the predict path uses it).
"""
from typing import Optional, Tuple

import numpy as np
from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS

from .pp_decode import (blur_padded, ppdet_back_projections, ppdet_decode, ppdet_get_max_preds,  # noqa: F401
                        ppdet_refine, ppdet_transform_preds)

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
