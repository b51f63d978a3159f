"""The two crop geometries a predictor can run, behind one interface.

* ``paddlex`` (default, PaddleX's keypoint module and pipeline): :mod:`.paddlex_geometry` — center/scale in pixels,
  the non-UDP crop (or PaddleX's ``use_udp`` crop), PaddleX's normalisation and float32 DARK decode;
* ``ppdet`` (PaddleDetection's evaluation, what ``tools/test.py`` and the parity tables use): :mod:`.preprocess` —
  scale in units of 200 px, the UDP crop, ppdet's normalisation, :func:`~kpt_plugin.codecs.decode_heatmaps`.
"""
import numpy as np

from ..codecs.pp_decode import decode_heatmaps
from ..errors import OptionError
from . import paddlex_geometry as pdx
from . import preprocess as ppd
from .preprocess import PIXEL_STD

__all__ = ['GEOMETRIES', 'make_geometry', 'PaddleXGeometry', 'PPDetGeometry']

GEOMETRIES = ('paddlex', 'ppdet')


class PaddleXGeometry:
    """PaddleX's geometry (see :mod:`.paddlex_geometry`)."""

    name = 'paddlex'

    def __init__(self, input_size, use_udp=False):
        self.input_size, self.use_udp = tuple(input_size), bool(use_udp)

    def whole(self, w, h):
        return pdx.whole_image_center_scale(w, h)

    def box(self, box_xyxy):
        return pdx.box_center_scale(box_xyxy, self.input_size)

    def given(self, w, h, center, scale):
        """Center/scale of PaddleX's dict input (pixels; a missing one from the whole image)."""
        return pdx.resolve_center_scale(w, h, center, scale)

    def batch(self, jobs):
        """Network input (N, 3, H, W) float32 of ``[(image, center, scale)]``."""
        crops = [pdx.warp(img, pdx.crop_affine(c, s, self.input_size, self.use_udp), self.input_size)
                 for img, c, s in jobs]
        return pdx.normalize(np.stack(crops))

    def decode(self, heatmaps, centers, scales):
        """``(keypoints (N, K, 3), kpt_score (N,))``; centers/scales are lists (each keeps its dtype)."""
        # PaddleX decodes each box in its own dtypes; boxes that share them can go together
        if len({(np.asarray(c).dtype, np.asarray(s).dtype) for c, s in zip(centers, scales)}) == 1:
            return pdx.decode(heatmaps, np.stack(centers), np.stack(scales))
        parts = [pdx.decode(heatmaps[i:i + 1], centers[i], scales[i]) for i in range(len(centers))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class PPDetGeometry:
    """PaddleDetection's evaluation geometry (see :mod:`.preprocess`)."""

    name = 'ppdet'

    def __init__(self, input_size, use_udp=None):
        self.input_size = tuple(input_size)

    def whole(self, w, h):
        return ppd.whole_image_center_scale(w, h, self.input_size)

    def box(self, box_xyxy):
        return ppd.box_center_scale(box_xyxy, self.input_size)

    def given(self, w, h, center, scale):
        c, s = self.whole(w, h)
        # ppdet's scale is in units of 200 px
        return (c if center is None else np.asarray(center, np.float64),
                s if scale is None else np.asarray(scale, np.float64) / PIXEL_STD)

    def batch(self, jobs):
        return ppd.crops_to_tensor([ppd.crop(img, c, s, self.input_size) for img, c, s in jobs])

    def decode(self, heatmaps, centers, scales):
        preds, maxvals = decode_heatmaps(heatmaps, np.stack(centers), np.stack(scales))
        return np.concatenate([preds, maxvals], axis=2), np.mean(maxvals, axis=(1, 2), dtype=np.float32)


def make_geometry(name, input_size, use_udp=None):
    """The geometry ``name`` (one of :data:`GEOMETRIES`) for a model input size ``(w, h)``."""
    if name == 'paddlex':
        return PaddleXGeometry(input_size, bool(use_udp))
    if name == 'ppdet':
        if use_udp not in (None, False, True):
            raise OptionError(f'use_udp must be True, False or None, got {use_udp!r}')
        if use_udp is False:
            raise OptionError("geometry='ppdet' always crops with UDP (ppdet's eval); use_udp=False needs "
                              "geometry='paddlex'")
        return PPDetGeometry(input_size)
    raise OptionError(f'unknown geometry {name!r}; choose paddlex (PaddleX, default) or ppdet (PaddleDetection eval)')
