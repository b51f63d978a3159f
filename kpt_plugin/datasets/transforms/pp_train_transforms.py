"""Training transforms where PaddleDetection's PP-TinyPose recipe differs from MMPose's stock ones.

ppdet (``ppdet/data/transform/keypoint_operators.py``, ``configs/keypoint/tiny_pose/tinypose_*.yml``)
trains with ``RandomFlipHalfBodyTransform`` -> ``AugmentationbyInformantionDropping`` ->
``TopDownAffine(use_udp=True)`` -> ``ToHeatmapsTopDown_DARK``. In MMPose terms:

* flip (p 0.5, ``x -> W - x - 1``, pairs swapped, centre flipped the same way): MMPose's ``RandomFlip``
  is exactly this; reused.
* half body (p 0.3 when more than 8 joints are labelled; upper body preferred with probability
  P(randn < 0.5) and only when it has more than 2 labelled joints, else lower body when it has more
  than 2, else upper; box of the chosen joints x1.5, aspect ratio fixed later): MMPose's
  ``RandomHalfBody`` with ``min_total_keypoints=9, min_upper_keypoints=3, min_lower_keypoints=3,
  upper_prioritized_prob=PPDET_UPPER_BODY_PROB``; reused (see :data:`PPDET_UPPER_BODY_PROB`).
* scale and rotation: ppdet clips a normal sample (so the bounds carry probability mass), MMPose's
  ``RandomBBoxTransform`` draws from a truncated normal whose sigma is the half range. Different
  distributions, hence :class:`PPRandomBBoxTransform`.
* AID cutout: not in MMPose, hence :class:`PPAIDCutout`.
* UDP affine: MMPose's ``TopdownAffine(use_udp=True)`` builds the same matrix as ppdet's
  ``get_warp_matrix(rot, 2 * center, input_size - 1, scale * 200)``; reused.
* DARK targets: the ``PPTinyPoseHeatmap`` codec through ``GenerateTarget``.
"""
import math
from typing import Dict, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpose.registry import TRANSFORMS

__all__ = ['PPRandomBBoxTransform', 'PPAIDCutout', 'PPDET_UPPER_BODY_PROB']

#: ppdet picks the upper body when ``np.random.randn() < 0.5``: probability Phi(0.5).
PPDET_UPPER_BODY_PROB = 0.5 * (1.0 + math.erf(0.5 / math.sqrt(2.0)))


@TRANSFORMS.register_module()
class PPRandomBBoxTransform(BaseTransform):
    """ppdet's random scale and rotation of the person box (``RandomFlipHalfBodyTransform``).

    ``bbox_scale *= clip(randn * scale_factor + 1, 1 - scale_factor, 1 + scale_factor)`` always;
    ``bbox_rotation = clip(randn * rotate_factor, -2 * rotate_factor, 2 * rotate_factor)`` with
    probability ``rotate_prob``, else 0. No shift (ppdet has none).

    Required keys: ``bbox_scale`` (N, 2). Modified: ``bbox_scale``. Added: ``bbox_rotation`` (N, ).

    Args:
        scale_factor (float): Standard deviation of the scale multiplier and its clip range around 1.
            ppdet's ``scale``; PP-TinyPose uses 0.25.
        rotate_factor (float): Standard deviation of the rotation in degrees, clipped at twice this.
            ppdet's ``rot``; PP-TinyPose uses 30.
        rotate_prob (float): Probability of rotating. ppdet's ``rot_prob`` (0.6).
    """

    def __init__(self, scale_factor: float = 0.25, rotate_factor: float = 30.0, rotate_prob: float = 0.6):
        super().__init__()
        if not 0 <= scale_factor < 1:
            raise ValueError(f'PPRandomBBoxTransform: scale_factor must be in [0, 1), got {scale_factor}')
        if not 0 <= rotate_prob <= 1:
            raise ValueError(f'PPRandomBBoxTransform: rotate_prob must be in [0, 1], got {rotate_prob}')
        self.scale_factor = scale_factor
        self.rotate_factor = rotate_factor
        self.rotate_prob = rotate_prob

    @cache_randomness
    def _sample(self, num: int):
        sf, rf = self.scale_factor, self.rotate_factor
        scale = np.clip(np.random.randn(num) * sf + 1, 1 - sf, 1 + sf)
        rot = np.clip(np.random.randn(num) * rf, -2 * rf, 2 * rf)
        rot = np.where(np.random.rand(num) <= self.rotate_prob, rot, 0.0)
        return scale.astype(np.float32), rot.astype(np.float32)

    def transform(self, results: Dict) -> Dict:
        bbox_scale = results['bbox_scale']
        scale, rot = self._sample(bbox_scale.shape[0])
        results['bbox_scale'] = bbox_scale * scale[:, None]
        results['bbox_rotation'] = rot
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(scale_factor={self.scale_factor}, '
                f'rotate_factor={self.rotate_factor}, rotate_prob={self.rotate_prob})')


@TRANSFORMS.register_module()
class PPAIDCutout(BaseTransform):
    """AID (Augmentation by Information Dropping, arXiv:2008.07139) as ppdet runs it.

    With probability ``prob`` and per instance, ``num_patch`` times: pick a labelled keypoint at random,
    move it by ``randn(2) * input_w * offset_factor``, and zero every pixel whose integer coordinates lie
    within a disc of radius ``uniform(0.1, 0.2) * input_w`` around it. Works on the *original* image
    before the affine warp, so the radius is in original-image pixels (as in ppdet, where the crop is not
    yet made). Instances with no labelled keypoint are left alone (ppdet would crash on them).

    Required keys: ``img``, ``keypoints`` (N, K, 2), ``keypoints_visible`` (N, K). Modified: ``img``.

    Args:
        input_size (tuple): Model input (w, h); only w is used, like ppdet's ``trainsize[0]``.
        prob (float): Probability of applying the cutout (ppdet ``prob_cutout``; PP-TinyPose 0.5).
        offset_factor (float): Centre jitter as a fraction of ``input_w`` (PP-TinyPose 0.05).
        num_patch (int): Discs per instance (PP-TinyPose 1).
        radius_range (tuple): Disc radius range as fractions of ``input_w`` (ppdet: fixed (0.1, 0.2)).
    """

    def __init__(self, input_size: Sequence[int], prob: float = 0.5, offset_factor: float = 0.05,
                 num_patch: int = 1, radius_range: Sequence[float] = (0.1, 0.2)):
        super().__init__()
        if len(input_size) != 2:
            raise ValueError(f'PPAIDCutout: input_size must be (w, h), got {input_size}')
        if not 0 <= prob <= 1:
            raise ValueError(f'PPAIDCutout: prob must be in [0, 1], got {prob}')
        self.input_size = tuple(input_size)
        self.prob = prob
        self.offset_factor = offset_factor
        self.num_patch = int(num_patch)
        self.radius_range = tuple(radius_range)

    @cache_randomness
    def _sample_discs(self, keypoints: np.ndarray, visible: np.ndarray):
        """Return a list of (cx, cy, radius) in image pixels, or an empty list (no cutout)."""
        if np.random.rand() >= self.prob:
            return []
        width = float(self.input_size[0])
        discs = []
        for kpts, vis in zip(keypoints, visible):
            labelled = np.flatnonzero(vis > 0)
            if labelled.size == 0:
                continue
            for _ in range(self.num_patch):
                joint = np.random.choice(labelled)
                center = kpts[joint, :2].astype(np.float64) + np.random.randn(2) * width * self.offset_factor
                radius = np.random.uniform(*self.radius_range) * width
                discs.append((center[0], center[1], radius))
        return discs

    @staticmethod
    def cut_disc(img: np.ndarray, cx: float, cy: float, radius: float) -> np.ndarray:
        """Zero the pixels (x, y) with ``((cx - x) / r)**2 + ((cy - y) / r)**2 <= 1``, in place.

        Only the disc's bounding window is evaluated; the test itself is ppdet's, in float64.
        """
        height, width = img.shape[:2]
        if radius <= 0:
            return img
        x0, x1 = max(0, math.floor(cx - radius)), min(width - 1, math.ceil(cx + radius))
        y0, y1 = max(0, math.floor(cy - radius)), min(height - 1, math.ceil(cy + radius))
        if x0 > x1 or y0 > y1:
            return img
        xs = np.arange(x0, x1 + 1, dtype=np.float64)[None, :]
        ys = np.arange(y0, y1 + 1, dtype=np.float64)[:, None]
        inside = ((cx - xs) / radius)**2 + ((cy - ys) / radius)**2 <= 1
        img[y0:y1 + 1, x0:x1 + 1][inside] = 0
        return img

    def transform(self, results: Dict) -> Dict:
        keypoints = results.get('keypoints')
        if keypoints is None:
            return results
        visible = results['keypoints_visible']
        if visible.ndim == 3:
            visible = visible[..., 0]
        discs = self._sample_discs(keypoints, visible)
        if discs:
            # the loaded image may be a view (e.g. after RandomFlip); never write through to a cache
            img = np.ascontiguousarray(results['img']).copy()
            for cx, cy, radius in discs:
                self.cut_disc(img, cx, cy, radius)
            results['img'] = img
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(input_size={self.input_size}, prob={self.prob}, '
                f'offset_factor={self.offset_factor}, num_patch={self.num_patch}, '
                f'radius_range={self.radius_range})')

