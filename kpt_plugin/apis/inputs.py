"""Inputs of :meth:`KeypointPredictor.predict`: arrays, files, URLs, directories, lists; person boxes.

Every problem raises :class:`InputError` with one line naming the input and saying what to do.
"""
import json
import os
import os.path as osp
import urllib.error
import urllib.request

import cv2
import numpy as np

__all__ = ['InputError', 'IMAGE_EXTS', 'MAX_PIXELS', 'URL_TIMEOUT', 'Item', 'expand_inputs', 'load_image',
           'check_array', 'normalize_boxes', 'read_boxes_file', 'boxes_for_items']

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
#: images above this many pixels are refused before decoding (decompression bombs, mistakes)
MAX_PIXELS = int(os.environ.get('KPT_PLUGIN_MAX_PIXELS', 100_000_000))
#: seconds to wait for an http(s) image
URL_TIMEOUT = float(os.environ.get('KPT_PLUGIN_URL_TIMEOUT', 10))


class InputError(ValueError):
    """One input cannot be used; the message names it."""


class Item:
    """One image to predict: where it came from, and (lazily) its pixels.

    Attributes:
        source: the user's input (path / URL / ``'<ndarray #i>'``).
        input_path: PaddleX ``input_path`` (file path or URL; None for arrays).
        index: position in the flattened input list.
        array: the image for ndarray inputs.
        error: an :class:`InputError` found while expanding (e.g. an empty directory).
    """

    __slots__ = ('source', 'input_path', 'index', 'array', 'error')

    def __init__(self, source, input_path=None, index=0, array=None, error=None):
        self.source, self.input_path, self.index, self.array, self.error = source, input_path, index, array, error

    @property
    def name(self):
        """A short name for messages and output files."""
        return self.input_path if self.input_path is not None else self.source


def _is_url(s):
    return s.startswith(('http://', 'https://'))


def expand_inputs(inputs):
    """Flatten ``inputs`` into :class:`Item` s: lists are flattened, directories expanded (sorted).

    Problems that concern one entry (an empty directory, an unsupported type) become an ``Item`` carrying
    ``error``, so the other entries still run.
    """
    items = []
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 0:
            raise InputError('input is an empty list; give an image path, URL, directory or BGR uint8 array')
        entries = list(inputs)
    else:
        entries = [inputs]
    for entry in entries:
        idx = len(items)
        if isinstance(entry, np.ndarray):
            items.append(Item(f'<ndarray #{idx}>', None, idx, array=entry))
        elif isinstance(entry, (str, os.PathLike)):
            s = os.fspath(entry)
            if _is_url(s):
                items.append(Item(s, s, idx))
            elif osp.isdir(s):
                files = sorted(f for f in os.listdir(s) if f.lower().endswith(IMAGE_EXTS)
                               and osp.isfile(osp.join(s, f)))
                if not files:
                    items.append(Item(s, s, idx, error=InputError(
                        f'{s}: directory holds no images ({", ".join(IMAGE_EXTS)})')))
                for f in files:
                    p = osp.join(s, f)
                    items.append(Item(p, p, len(items)))
            else:
                items.append(Item(s, s, idx))
        else:
            items.append(Item(f'<{type(entry).__name__} #{idx}>', None, idx, error=InputError(
                f'input #{idx}: unsupported type {type(entry).__name__}; give an image path, URL, directory '
                'or an H x W x 3 BGR uint8 numpy array')))
    return items


def check_array(img, name):
    """Validate an H x W x 3 BGR uint8 array (as ``cv2.imread`` returns); returns it C-contiguous."""
    if not isinstance(img, np.ndarray):
        raise InputError(f'{name}: expected a numpy array, got {type(img).__name__}')
    if img.dtype != np.uint8:
        raise InputError(f'{name}: dtype {img.dtype} is not supported; give a BGR uint8 image (H x W x 3), e.g. '
                         'np.clip(img, 0, 255).astype(np.uint8) or cv2.imread(path)')
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        raise InputError(f'{name}: grayscale array {img.shape}; convert it with cv2.cvtColor(img, '
                         'cv2.COLOR_GRAY2BGR)')
    if img.ndim == 3 and img.shape[2] == 4:
        raise InputError(f'{name}: 4-channel (BGRA) array {img.shape}; drop alpha with cv2.cvtColor(img, '
                         'cv2.COLOR_BGRA2BGR)')
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f'{name}: array of shape {img.shape} is not an H x W x 3 BGR image')
    h, w = img.shape[:2]
    if h < 2 or w < 2:
        raise InputError(f'{name}: image of {w}x{h} pixels is too small')
    if h * w > MAX_PIXELS:
        raise InputError(f'{name}: image of {w}x{h} pixels exceeds the limit of {MAX_PIXELS} pixels '
                         '(KPT_PLUGIN_MAX_PIXELS); resize it first')
    return np.ascontiguousarray(img)


def _read_url(url):
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as resp:  # noqa: S310 - user-given image URL
            return resp.read()
    except urllib.error.HTTPError as e:
        raise InputError(f'{url}: HTTP {e.code} {e.reason}') from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, 'reason', e)
        raise InputError(f'{url}: cannot download ({reason}); check the URL and the network, or download '
                         'the image and pass the file') from None


def _peek_size(data, name):
    # refuse huge images from their header, before decoding allocates the pixels
    from PIL import Image
    import io
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise InputError(f'{name}: image exceeds the limit of {MAX_PIXELS} pixels (KPT_PLUGIN_MAX_PIXELS) by far; '
                         'resize it first') from None
    except Exception:  # noqa: BLE001 - unknown to PIL: let OpenCV decide below
        return
    if w * h > MAX_PIXELS:
        raise InputError(f'{name}: image of {w}x{h} pixels exceeds the limit of {MAX_PIXELS} pixels '
                         '(KPT_PLUGIN_MAX_PIXELS); resize it first')


def decode_image(data, name):
    """Decode encoded image bytes into BGR uint8 (gray and BGRA 8-bit images are converted)."""
    if len(data) == 0:
        raise InputError(f'{name}: file is empty (0 bytes)')
    _peek_size(data, name)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f'{name}: not a readable image (corrupt or unsupported format; supported: '
                         f'{", ".join(IMAGE_EXTS)})')
    if img.dtype != np.uint8:
        raise InputError(f'{name}: {img.dtype} ({8 * img.dtype.itemsize}-bit) images are not supported; save it '
                         'as an 8-bit image first')
    if img.ndim == 2 or img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return check_array(img, name)


def load_image(item):
    """BGR uint8 pixels of an :class:`Item` (validates arrays, reads files and URLs)."""
    if item.error is not None:
        raise item.error
    if item.array is not None:
        return check_array(item.array, item.name)
    src = item.source
    if _is_url(src):
        return decode_image(_read_url(src), src)
    if not osp.exists(src):
        raise InputError(f'{src}: no such file or directory')
    if not osp.isfile(src):
        raise InputError(f'{src}: not a regular file')
    try:
        with open(src, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise InputError(f'{src}: cannot read ({e.strerror})') from None
    return decode_image(data, src)


def normalize_boxes(boxes, name):
    """Validate one image's boxes ``[[x1, y1, x2, y2, (score)], ...]`` -> float64 (N, 4) or (N, 5)."""
    try:
        if (isinstance(boxes, (list, tuple)) and boxes and all(isinstance(b, (list, tuple, np.ndarray)) for b in boxes)
                and len({len(b) for b in boxes}) > 1):
            # rows with and without a score: a missing score counts as 1
            boxes = [list(b) + [1.0] if len(b) == 4 else b for b in boxes]
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f'{name}: boxes must be numbers [[x1, y1, x2, y2, (score)], ...]; got {boxes!r:.80}') \
            from None
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise InputError(f'{name}: boxes must have shape (N, 4) or (N, 5) [x1, y1, x2, y2, (score)]; got '
                         f'{arr.shape}')
    if not np.isfinite(arr).all():
        raise InputError(f'{name}: boxes contain NaN or infinity')
    bad = np.nonzero((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]))[0]
    if len(bad):
        raise InputError(f'{name}: box #{bad[0]} {arr[bad[0], :4].tolist()} has x2 <= x1 or y2 <= y1 '
                         '(boxes are [x1, y1, x2, y2] in pixels)')
    return arr


def read_boxes_file(path):
    """Read person boxes from a json file.

    Accepted forms: COCO detection results (a list of ``{image_id, bbox: [x, y, w, h], score,
    (category_id)}``; only category 1 = person is kept; an image matches by ``int(file stem) == image_id``
    as COCO names its files), or a mapping ``{file name: [[x1, y1, x2, y2, (score)], ...]}``.

    Returns:
        dict: key (int image id or file name) -> float64 (N, 5) xyxy+score.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise InputError(f'{path}: boxes file not found')
    try:
        with open(path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f'{path}: not a valid json file ({e})') from None
    table = {}
    if isinstance(data, list):
        for i, det in enumerate(data):
            if not isinstance(det, dict) or 'image_id' not in det or 'bbox' not in det:
                raise InputError(f'{path}: entry #{i} is not a COCO detection {{image_id, bbox, score}}')
            if det.get('category_id', 1) != 1:
                continue
            x, y, w, h = (float(v) for v in det['bbox'][:4])
            table.setdefault(det['image_id'], []).append([x, y, x + w, y + h, float(det.get('score', 1.0))])
        return {k: normalize_boxes(v, f'{path} (image_id {k})') for k, v in table.items()}
    if isinstance(data, dict):
        return {k: normalize_boxes(v, f'{path} ({k})') for k, v in data.items()}
    raise InputError(f'{path}: expected a COCO detection list or a {{file name: boxes}} mapping')


def _key_candidates(item):
    if item.input_path is None:
        return []
    base = osp.basename(item.input_path.split('?')[0])
    keys = [item.input_path, base]
    stem = osp.splitext(base)[0]
    if stem.isdigit():
        keys.append(int(stem))
    return keys


def _depth(x):
    d = 0
    while isinstance(x, (list, tuple, np.ndarray)) and len(x) > 0:
        x = x[0]
        d += 1
    return d


def boxes_for_items(items, bboxes):
    """Per-item boxes: ``None`` (whole image) or a float64 (N, 5) array (may be empty), or an InputError.

    ``bboxes`` may be ``None``; a json path (see :func:`read_boxes_file`); a mapping file name/id -> boxes;
    one image's boxes ``[[x1, y1, x2, y2, (score)], ...]`` (only with a single image); or a list with one
    box list per image.
    """
    if bboxes is None:
        return [None] * len(items)
    if isinstance(bboxes, (str, os.PathLike)):
        bboxes = read_boxes_file(bboxes)
    if isinstance(bboxes, dict):
        out = []
        for item in items:
            found = next((bboxes[k] for k in _key_candidates(item) if k in bboxes), None)
            # an image the detector found no person in has no entry: no boxes, no keypoints
            out.append(normalize_boxes(found, item.name) if found is not None else np.zeros((0, 4)))
        return out
    depth = _depth(bboxes)
    if depth <= 2 and not (depth == 1 and len(items) > 1):
        if len(items) != 1:
            raise InputError(f'bboxes: one box list was given for {len(items)} images; give one list per image '
                             '(or a json file)')
        try:
            return [normalize_boxes(bboxes, f'{items[0].name} bboxes')]
        except InputError as e:
            return [e]
    if len(bboxes) != len(items):
        raise InputError(f'bboxes: {len(bboxes)} box lists for {len(items)} images; give one list per image')
    out = []
    for item, b in zip(items, bboxes):
        try:
            out.append(None if b is None else normalize_boxes(b, f'{item.name} bboxes'))
        except InputError as e:
            out.append(e)
    return out
