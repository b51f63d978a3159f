"""Vectorised ppdet decode for the predict path (same numbers as :func:`~kpt_plugin.codecs.pp_heatmap.ppdet_decode`).

``ppdet_decode`` loops over persons and joints in Python (ppdet's structure, kept as the reference); this does
the same float32/float64 steps on whole arrays, which keeps pre+post-processing small next to the network at
batch 8. ``tests/test_apis/test_postprocess.py`` checks it against ``ppdet_decode`` on ppdet's fixtures.
"""
import numpy as np

from kpt_plugin.codecs.pp_heatmap import ppdet_get_max_preds, ppdet_transform_preds

__all__ = ['decode_heatmaps']


def _blur_keep_max(heatmaps):
    # ppdet: per map, zero-pad by 1, cv2.GaussianBlur 3x3 (sigma 0) in float64, crop, store to float32, rescale
    # (float32) to keep the map's maximum. Here all padded maps are stacked into ONE image: a pixel inside a
    # map only reaches its own zero ring, so one OpenCV call gives the same numbers.
    import cv2
    n, k, h, w = heatmaps.shape
    p = np.zeros((n * k, h + 2, w + 2))
    p[:, 1:-1, 1:-1] = heatmaps.reshape(n * k, h, w)
    blurred = cv2.GaussianBlur(p.reshape(n * k * (h + 2), w + 2), (3, 3), 0)
    out = blurred.reshape(n * k, h + 2, w + 2)[:, 1:-1, 1:-1].astype(np.float32).reshape(n, k, h, w)
    orig_max = heatmaps.reshape(n, k, -1).max(axis=2)
    out *= (orig_max / out.reshape(n, k, -1).max(axis=2))[..., None, None]
    return out


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
    logs = np.log(np.maximum(_blur_keep_max(heatmaps), np.float32(1e-10)))
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    ii, jj = np.nonzero(inside)
    if len(ii):
        x, y = px[ii, jj], py[ii, jj]
        hm = logs[ii, jj]  # (M, h, w)
        m = np.arange(len(ii))

        def at(dx, dy):
            return hm[m, y + dy, x + dx]

        f64 = np.float64
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
    preds = coords.copy()
    for i in range(n):
        preds[i] = ppdet_transform_preds(coords[i], center[i], scale[i], (w, h))
    return preds, maxvals
