"""Vectorised ppdet decode for the predict path (same numbers as :func:`~kpt_plugin.codecs.pp_heatmap.ppdet_decode`).

``ppdet_decode`` loops over persons and joints in Python (ppdet's structure, kept as the reference); this does
the same float32/float64 steps on whole arrays, which keeps pre+post-processing small next to the network at
batch 8. ``tests/test_codecs/test_pp_decode.py`` checks it against ``ppdet_decode`` on ppdet's fixtures.
"""
import numpy as np

from .pp_heatmap import blur_padded, ppdet_back_projections, ppdet_get_max_preds

__all__ = ['decode_heatmaps']


def decode_heatmaps(heatmaps, center, scale):
    """ppdet ``HRNetPostProcess(use_dark=True)``: heatmaps -> image keypoints and scores, vectorised.

    Args:
        heatmaps (np.ndarray): (N, K, h, w) float32.
        center (np.ndarray): (N, 2) box centers (image px).
        scale (np.ndarray): (N, 2) box sizes in units of 200 px.

    Returns:
        tuple: preds (N, K, 2) float32 image coordinates, maxvals (N, K, 1) float32.
    """
    heatmaps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    n, k, h, w = heatmaps.shape
    if n == 0:
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k, 1), np.float32)
    coords, maxvals = ppdet_get_max_preds(heatmaps)
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    ii, jj = np.nonzero(inside)
    if len(ii):
        blurred = blur_padded(heatmaps)  # (N*K, h+2, w+2) float64, zero ring included
        # ppdet stores the blurred map as float32, rescales it (float32) to keep the map's maximum and takes the
        # log of every pixel; only 13 taps per joint are read, so do those steps on the taps alone. The maximum
        # of the float32 map is the float32 of the float64 maximum (rounding is monotonic), taken inside the map:
        # the blur leaks into the padding ring, which ppdet crops off first.
        bmax = blurred[:, 1:-1, 1:-1].reshape(n, k, -1).max(axis=2).astype(np.float32)
        orig_max = heatmaps.reshape(n, k, -1).max(axis=2)
        ratio = (orig_max / bmax)[ii, jj]
        x, y = px[ii, jj] + 1, py[ii, jj] + 1  # +1: the zero ring
        maps = blurred[ii * k + jj]  # (M, h+2, w+2)
        m = np.arange(len(ii))
        f64 = np.float64

        def at(dx, dy):
            v = maps[m, y + dy, x + dx].astype(np.float32)
            v *= ratio
            return np.log(np.maximum(v, np.float32(1e-10)))

        # float32 differences, scaled/combined in float64 (as ppdet on numpy 1.x)
        dx = 0.5 * (at(1, 0) - at(-1, 0)).astype(f64)
        dy = 0.5 * (at(0, 1) - at(0, -1)).astype(f64)
        c = at(0, 0).astype(f64)
        dxx = 0.25 * (at(2, 0).astype(f64) - 2 * c + at(-2, 0).astype(f64))
        dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1)).astype(f64)
        dyy = 0.25 * (at(0, 2).astype(f64) - 2 * c + at(0, -2).astype(f64))
        det = dxx * dyy - dxy**2
        ok = det != 0
        hess = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2)[ok]
        grad = np.stack([dx, dy], -1)[ok]
        offset = -np.einsum('mij,mj->mi', np.linalg.inv(hess), grad)
        # float32 coords += float64 offset, rounded back to float32 (ppdet's in-place add)
        sel = (ii[ok], jj[ok])
        coords[sel] = (coords[sel].astype(f64) + offset).astype(np.float32)
    trans = ppdet_back_projections(center, scale, (w, h))
    pts = np.concatenate([coords.astype(np.float64), np.ones((n, k, 1))], axis=2)
    return (pts @ trans.transpose(0, 2, 1)).astype(np.float32), maxvals
