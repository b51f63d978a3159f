"""PicoDet's preprocessing as ppdet's ``Decode / Resize / NormalizeImage / Permute`` (``interp: 2``).

The image is stretched to ``size x size`` (no aspect ratio kept) with cv2's bicubic, BGR -> RGB, ``/ 255``, ImageNet
mean/std. Normalisation repeats ppdet's numpy arithmetic (``*= 1/255`` in float32, then ``-= mean`` and
``/= std`` evaluated in float64 and stored as float32), so the network input is bit-identical to ppdet's.
"""
import cv2
import numpy as np
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: ppdet ``Resize(interp=2)``; mmcv's ``imresize(interpolation='bicubic')`` is the same cv2 flag
INTERPOLATION = cv2.INTER_CUBIC


def resize(img, size):
    """Stretch ``img`` (H, W, C) to ``size x size`` like ppdet's ``Resize(keep_ratio=False, interp=2)``.

    Returns:
        tuple[ndarray, ndarray]: the resized image and ppdet's ``scale_factor`` ``[size / h, size / w]``
        (float32, shape (2, )).
    """
    h, w = img.shape[:2]
    scale_y, scale_x = size / h, size / w
    out = cv2.resize(img, None, None, fx=scale_x, fy=scale_y, interpolation=INTERPOLATION)
    return out, np.array([scale_y, scale_x], dtype=np.float32)


def normalize(img_rgb):
    """ppdet ``NormalizeImage(is_scale=True)`` on an RGB (H, W, 3) image -> float32 (H, W, 3)."""
    x = img_rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.asarray(MEAN)).astype(np.float32)
    return (x / np.asarray(STD)).astype(np.float32)


def normalize_tensor(batch_rgb):
    """:func:`normalize` for a (N, 3, H, W) RGB tensor (any dtype) -> float32, same arithmetic."""
    x = batch_rgb.float() * np.float32(1.0 / 255.0)
    mean = torch.tensor(MEAN, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    x = (x.double() - mean).float()
    return (x.double() / std).float()


def preprocess_image(img_bgr, size):
    """A BGR uint8 image (as ``cv2.imread``) -> ``(input (1, 3, size, size) float32, scale_factor [h, w])``."""
    img, scale_factor = resize(img_bgr, size)
    x = normalize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), scale_factor
