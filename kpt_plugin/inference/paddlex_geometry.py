"""PaddleX 3.x keypoint module (``paddlex.create_model('PP-TinyPose_*')``): its geometry and decode in numpy/cv2.

PaddleX does not use PaddleDetection's evaluation geometry (UDP crop, scale in units of 200 px):

* no box: center ``(W/2, H/2)``, scale ``(W, H)`` in pixels; a box: its ``human_keypoint_detection`` pipeline's
  ``_box_xyxy2cs`` (box widened/heightened to the input's aspect ratio, x1.25, pixels);
* the crop is the *non-UDP* ``get_affine_transform``, which only reads ``scale[0]`` (``use_udp=True`` selects a
  UDP matrix for the crop, but the back-projection stays non-UDP);
* decode: ppdet deploy's ``HRNetPostProcess`` DARK step and the non-UDP inverse with the same center/scale
  (in pixels, where ppdet's deploy code multiplies by 200). PaddleX 3.7.2's goldens were made under numpy 2: the Taylor
  step is float32 throughout (numpy 1 promoted parts of it to float64, as
  :func:`kpt_plugin.codecs.pp_decode.ppdet_refine` reproduces): the two differ by up to ~6e-5 px.

Every function keeps PaddleX's dtypes and operation order: float32 vs float64 inputs change the crop matrix in its
last bits, and cv2's fixed-point bilinear sampling turns that into keypoint shifts (up to 0.056 px measured: the
pipeline's detector boxes are float32, so its center/scale are computed in float32).
``tests/test_inference/test_paddlex_geometry.py`` checks all of it against PaddleX's own outputs.
"""
import os
from collections.abc import Sequence

import cv2
import numpy as np

from ..codecs.pp_decode import blur_padded, ppdet_get_max_preds

__all__ = ['COCO_FLIP_PAIRS', 'IMAGENET_MEAN', 'IMAGENET_STD', 'BOX_PADDING', 'whole_image_center_scale',
           'box_center_scale', 'resolve_center_scale', 'crop_affine', 'back_projection', 'warp', 'normalize',
           'flip_fuse', 'decode', 'parse_paddlex_dict_input']

#: left/right COCO joint pairs (PaddleX ``KptPredictor.flip_perm``)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
#: ``NormalizeImage`` of PaddleX's ``inference.yml`` (RGB, on [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``_box_xyxy2cs`` enlargement
BOX_PADDING = 1.25


def _as_array(v):
    # PaddleX turns lists/tuples into arrays and leaves arrays (and their dtype) alone
    return np.array(v) if isinstance(v, Sequence) else v


def whole_image_center_scale(w, h):
    """PaddleX's center/scale when no box is given: the whole image.

    Args:
        w, h (int): image width and height.

    Returns:
        tuple: center ``(w/2, h/2)`` float64 and scale ``(w, h)`` int64 (pixels), PaddleX's own dtypes.
    """
    size = np.array([int(w), int(h)], dtype=np.int64)
    return size / 2.0, size


def box_center_scale(box_xyxy, input_size, padding=BOX_PADDING):
    """PaddleX pipeline ``_box_xyxy2cs``: center and scale (pixels) of a box ``[x1, y1, x2, y2, ...]``.

    The arithmetic follows the box's own element types, as PaddleX's does: float32 coordinates (a detector's
    output) give float32 center/scale, Python floats give float64.

    Args:
        box_xyxy: box corners in image pixels (extra entries, e.g. a score, are ignored).
        input_size: model input (w, h), e.g. (96, 128).
        padding (float): enlargement.

    Returns:
        tuple: center (2,) and scale (2,) numpy arrays.
    """
    x1, y1, x2, y2 = box_xyxy[:4]
    center = np.array([x1 + x2, y1 + y2]) * 0.5
    aspect = input_size[0] / input_size[1]
    w, h = x2 - x1, y2 - y1
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) * padding


def resolve_center_scale(w, h, center=None, scale=None):
    """PaddleX ``TopDownAffine`` defaults: a missing center and/or scale comes from the whole image (each alone).

    Args:
        w, h (int): image width and height.
        center, scale: given values (lists/tuples become arrays, arrays keep their dtype) or None.

    Returns:
        tuple: center, scale.
    """
    center, scale = _as_array(center), _as_array(scale)
    c, s = whole_image_center_scale(w, h)
    return (c if center is None else center), (s if scale is None else scale)


def _third_point(a, b):
    # b + (a - b) rotated by +90 degrees, in float32 like PaddleX's _get_3rd_point
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def _affine(center, scale, out_size, inv=False):
    """PaddleX ``get_affine_transform(center, scale, rot=0, out_size, inv)``: a float64 2x3 matrix.

    Only ``scale[0]`` is used: the box width is mapped onto the output width, the output height follows.
    """
    if not isinstance(scale, (np.ndarray, list)):
        scale = np.array([scale, scale], dtype=np.float32)
    out_w, out_h = out_size[0], out_size[1]
    # rot = 0: PaddleX's rotate_point with sin 0 / cos 1 reduces to this vector, in float64 whatever scale's dtype
    src_dir = np.array([0.0, np.float64(scale[0] * -0.5)])
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale * np.zeros(2)  # the zero ``shift`` of PaddleX, kept for its float64 promotion
    src[1] = center + src_dir + scale * np.zeros(2)
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = np.array([out_w * 0.5, out_h * 0.5]) + np.array([0.0, out_w * -0.5])
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def _udp_matrix(size_input, size_dst, size_target):
    """PaddleX ``get_warp_matrix(theta=0, ...)``: float32 2x3, entries computed in the inputs' precision."""
    theta = np.deg2rad(0)
    cos, sin = np.cos(theta), np.sin(theta)
    sx = size_dst[0] / size_target[0]
    sy = size_dst[1] / size_target[1]
    m = np.zeros((2, 3), dtype=np.float32)
    m[0, 0] = cos * sx
    m[0, 1] = -sin * sx
    m[0, 2] = sx * (-0.5 * size_input[0] * cos + 0.5 * size_input[1] * sin + 0.5 * size_target[0])
    m[1, 0] = sin * sy
    m[1, 1] = cos * sy
    m[1, 2] = sy * (-0.5 * size_input[0] * sin - 0.5 * size_input[1] * cos + 0.5 * size_target[1])
    return m


def crop_affine(center, scale, input_size, use_udp=False):
    """The 2x3 image -> network-input matrix of PaddleX ``TopDownAffine``.

    Args:
        center: (2,) box center in image pixels.
        scale: (2,) box size in pixels (only ``scale[0]`` matters without UDP).
        input_size: model input (w, h).
        use_udp (bool): PaddleX's ``use_udp`` branch (``KptPredictor(use_udp=True)``). Its back-projection is
            still the non-UDP inverse, so PaddleX's keypoints come out biased with it.

    Returns:
        np.ndarray: float64 (2, 3) without UDP (``cv2.getAffineTransform``), float32 (2, 3) with UDP.
    """
    center, scale = _as_array(center), _as_array(scale)
    if use_udp:
        return _udp_matrix(center * 2.0, [input_size[0] - 1.0, input_size[1] - 1.0], scale)
    return _affine(center, scale, input_size)


def back_projection(center, scale, heatmap_size):
    """PaddleX ``transform_preds``' matrix: heatmap pixels -> image pixels (float64 2x3), for any ``use_udp``."""
    return _affine(_as_array(center), _as_array(scale), heatmap_size, inv=True)


def warp(img_bgr, matrix, input_size):
    """``cv2.warpAffine`` as PaddleX: bilinear, constant border 0, output ``input_size`` (w, h).

    The channel order is kept (PaddleX swaps BGR -> RGB before warping; the warp treats channels independently,
    so swapping after it, in :func:`normalize`, gives the same bytes).
    """
    return cv2.warpAffine(img_bgr, matrix, (int(input_size[0]), int(input_size[1])), flags=cv2.INTER_LINEAR)


def normalize(crops_bgr, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """PaddleX ``Normalize`` + ``ToCHWImage`` + ``ToBatch`` on BGR uint8 crop(s).

    PaddleX computes ``alpha = (1/255)/std`` and ``beta = -mean/std`` in Python floats and applies
    ``x * alpha + beta`` per channel in float32 (not ppdet's ``(x/255 - mean)/std``; they differ by ~7e-7).

    Args:
        crops_bgr (np.ndarray): (H, W, 3) or (N, H, W, 3) BGR.
        mean, std: RGB mean/std on [0, 1].

    Returns:
        np.ndarray: (N, 3, H, W) float32 RGB network input.
    """
    x = np.asarray(crops_bgr)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f'expected (H, W, 3) or (N, H, W, 3) BGR crops, got shape {x.shape}')
    alpha = np.array([(1.0 / 255.0) / s for s in std], dtype=np.float32)
    beta = np.array([-m / s for m, s in zip(mean, std)], dtype=np.float32)
    out = x[..., ::-1].astype(np.float32)
    out *= alpha
    out += beta
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def flip_fuse(heatmap, heatmap_flipped, flip_pairs=COCO_FLIP_PAIRS, shift=True):
    """PaddleX's flip test: average the heatmaps of the input and of the W-flipped input.

    The flipped maps are flipped back along W, left/right joints swapped, and (PP-TinyPose: ``shift_heatmap``)
    moved right by one column with column 0 kept, then ``(heatmap + back) * 0.5`` in float32.

    Args:
        heatmap, heatmap_flipped (np.ndarray): (N, K, h, w) float32 network outputs.
        flip_pairs: joint index pairs to swap.
        shift (bool): PaddleX shifts for every model whose name contains ``PP-TinyPose``.

    Returns:
        np.ndarray: fused (N, K, h, w) float32.
    """
    back = np.array(heatmap_flipped[..., ::-1], dtype=np.float32)  # a copy, inputs are left alone
    for a, b in flip_pairs:
        back[:, [a, b]] = back[:, [b, a]]
    if shift:
        back[..., 1:] = back[..., :-1].copy()
    return (np.asarray(heatmap, dtype=np.float32) + back) * 0.5


def _blurred_logs(heatmaps, kernel):
    """PaddleX ``gaussian_blur`` + ``np.maximum(.., 1e-10)`` + ``np.log``: float32 (N, K, h, w)."""
    n, k, h, w = heatmaps.shape
    b = (kernel - 1) // 2
    out = blur_padded(heatmaps, kernel)[:, b:b + h, b:b + w].astype(np.float32).reshape(n, k, h, w)
    with np.errstate(divide='ignore', invalid='ignore'):  # all-zero maps: 0/0 as in PaddleX (never read)
        ratio = heatmaps.max(axis=(2, 3)) / out.max(axis=(2, 3))  # float32 / float32, keeps each map's maximum
        out *= ratio[..., None, None]
        return np.log(np.maximum(out, np.float32(1e-10)))


def _dark(heatmaps, coords, kernel):
    # PaddleX dark_parse, vectorised; under numpy 2 every step is float32 (python scalars do not promote)
    n, k, h, w = heatmaps.shape
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ii, jj = np.nonzero((px > 1) & (px < w - 2) & (py > 1) & (py < h - 2))
    if not len(ii):
        return coords
    logs = _blurred_logs(heatmaps, kernel)[ii, jj]  # (M, h, w)
    m, x, y = np.arange(len(ii)), px[ii, jj], py[ii, jj]

    def at(ox, oy):
        return logs[m, y + oy, x + ox]

    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    dyy = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    ok = dxx * dyy - dxy**2 != 0
    if ok.any():
        hess = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2)[ok]
        grad = np.stack([dx, dy], -1)[ok][..., None]
        offset = np.matmul(-np.linalg.inv(hess), grad)[..., 0]  # float32 like np.matrix .I and *
        coords[ii[ok], jj[ok]] += offset
    return coords


def _quarter_offset(heatmaps, coords):
    # PaddleX's use_dark=False branch: a quarter pixel towards the higher neighbour, on the raw maps
    n, k, h, w = heatmaps.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    ii, jj = np.nonzero((px > 1) & (px < w - 1) & (py > 1) & (py < h - 1))
    x, y = px[ii, jj], py[ii, jj]
    diff = np.stack([heatmaps[ii, jj, y, x + 1] - heatmaps[ii, jj, y, x - 1],
                     heatmaps[ii, jj, y + 1, x] - heatmaps[ii, jj, y - 1, x]], -1)
    coords[ii, jj] += np.sign(diff) * 0.25
    return coords


def decode(heatmaps, center, scale, use_dark=True, kernel=3):
    """PaddleX ``KptPostProcess``: heatmaps -> image keypoints ``[x, y, score]`` and ``kpt_score``.

    Argmax (joints with a non-positive maximum get heatmap coordinate (0, 0), which is still back-projected),
    DARK, then the non-UDP inverse of (center, scale in pixels). No clipping to the image and no score threshold:
    PaddleX has neither. ``heatmaps`` is not modified (PaddleX blurs its output array in place).

    Args:
        heatmaps (np.ndarray): (N, K, h, w) or (K, h, w) float32, flip-fused already when flip is on.
        center: (N, 2) or (2,) box centers, image pixels.
        scale: (N, 2) or (2,) box sizes, pixels (PaddleX's, not ppdet's units of 200 px).
        use_dark (bool): DARK (PaddleX always); False: the quarter-offset rule.
        kernel (int): DARK blur kernel.

    Returns:
        tuple: keypoints (N, K, 3) float32, kpt_score (N,) float32 (mean of the K maxima).
    """
    hm = np.array(heatmaps, dtype=np.float32)
    if hm.ndim == 3:
        hm = hm[None]
    if hm.ndim != 4:
        raise ValueError(f'heatmaps must be (N, K, h, w) or (K, h, w), got shape {np.shape(heatmaps)}')
    n, _, h, w = hm.shape
    centers, scales = _as_array(center), _as_array(scale)  # rows keep the caller's dtype, as in PaddleX
    centers = centers[None] if np.ndim(centers) == 1 else centers
    scales = scales[None] if np.ndim(scales) == 1 else scales
    if np.shape(centers) != (n, 2) or np.shape(scales) != (n, 2):
        raise ValueError(f'{n} heatmaps need ({n}, 2) centers and scales, got shapes {np.shape(center)} and '
                         f'{np.shape(scale)}')
    coords, maxvals = ppdet_get_max_preds(hm)
    coords = _dark(hm, coords, kernel) if use_dark else _quarter_offset(hm, coords)
    preds = np.empty_like(coords)
    for i in range(n):
        t = back_projection(centers[i], scales[i], (w, h))
        xy = coords[i].astype(np.float64)
        # t @ [x, y, 1] per joint, then stored into PaddleX's float32 coordinate array
        preds[i, :, 0] = xy[:, 0] * t[0, 0] + xy[:, 1] * t[0, 1] + t[0, 2]
        preds[i, :, 1] = xy[:, 0] * t[1, 0] + xy[:, 1] * t[1, 1] + t[1, 2]
    keypoints = np.concatenate([preds, maxvals], axis=-1)
    return keypoints, np.mean(maxvals[..., 0], axis=1)


def _check_point(v, name, positive=False):
    arr = np.asarray(v)
    if arr.shape != (2,) or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f'{name} must be 2 real numbers, got {v!r}')
    if not np.all(np.isfinite(arr)) or (positive and not np.all(arr > 0)):
        raise ValueError(f'{name} must be finite{" and > 0" if positive else ""}, got {v!r}')


def parse_paddlex_dict_input(d):
    """Validate PaddleX's dict input ``{'img' | 'img_path', 'center', 'scale'}`` (what its pipeline passes).

    As PaddleX: ``'img'`` wins over ``'img_path'``; either may hold a path or a BGR array; ``center``/``scale``
    are optional (each missing one comes from the whole image, :func:`resolve_center_scale`); lists/tuples
    become arrays, arrays keep their dtype; other keys are ignored. Stricter than PaddleX: a scalar scale, a
    non-3-channel array, non-finite or non-positive sizes are rejected here.

    Args:
        d (dict): the input.

    Returns:
        tuple: image (np.ndarray, BGR) or path (str), center or None, scale or None.

    Raises:
        TypeError: not a dict, or the image is neither an array nor a path.
        ValueError: no image key, a malformed array, center or scale.
    """
    if not isinstance(d, dict):
        raise TypeError(f'expected a dict input, got {type(d).__name__}')
    if 'img' in d:
        src = d['img']
    elif 'img_path' in d:
        src = d['img_path']
    else:
        raise ValueError("a dict input needs one of the keys ['img', 'img_path']")
    if isinstance(src, os.PathLike):
        src = os.fspath(src)
    if isinstance(src, np.ndarray):
        if src.ndim != 3 or src.shape[2] != 3 or src.size == 0:
            raise ValueError(f'the image array must be (H, W, 3) BGR, got shape {src.shape}')
    elif not isinstance(src, str):
        raise TypeError(f"the image must be a numpy array or a path, got {type(src).__name__}")
    center, scale = _as_array(d.get('center')), _as_array(d.get('scale'))
    if center is not None:
        _check_point(center, 'center')
    if scale is not None:
        _check_point(scale, 'scale', positive=True)
    return src, center, scale
