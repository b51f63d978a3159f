"""ppdet's ``HRNetPostProcess`` decode (numpy and OpenCV only: the predict path imports it without MMPose).

:func:`ppdet_decode` loops over persons and joints in Python (ppdet's structure, the codec's decode and the
reference); :func:`decode_heatmaps` does the same float32/float64 steps on whole arrays, which keeps
pre+post-processing small next to the network at batch 8. ``tests/test_codecs/test_pp_decode.py`` checks it
against ``ppdet_decode`` on ppdet's fixtures.
"""
import cv2
import numpy as np

__all__ = ['decode_heatmaps', 'ppdet_decode', 'ppdet_get_max_preds', 'ppdet_refine', 'ppdet_transform_preds',
           'ppdet_back_projections', 'blur_padded']


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
