"""Inputs of :meth:`KeypointPredictor.predict`: arrays, files, URLs, directories, lists; person boxes.

Every problem raises :class:`InputError` with one line naming the input and saying what to do.
"""
import http.client
import json
import os
import os.path as osp
import re
import time
import urllib.error
import urllib.request

import cv2
import numpy as np

from ..errors import InputError

from ..errors import OptionError

__all__ = ['InputError', 'IMAGE_EXTS', 'Item', 'expand_inputs', 'load_image', 'limit', 'check_array',
           'normalize_boxes', 'read_boxes_file', 'boxes_for_items']

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')

#: environment variable -> (default, type, what it limits); read when used, so a bad value names itself
LIMITS = {
    'KPT_PLUGIN_MAX_PIXELS': (100_000_000, int, 'pixels per image (decompression bombs, mistakes)'),
    'KPT_PLUGIN_MAX_BYTES': (256 << 20, int, 'bytes per image file or download'),
    'KPT_PLUGIN_URL_TIMEOUT': (10.0, float, 'seconds for a whole http(s) download'),
}


def limit(name):
    """The value of a limit of :data:`LIMITS` (its environment variable, else the default)."""
    default, kind, what = LIMITS[name]
    raw = os.environ.get(name)
    if raw is None or raw.strip() == '':
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise OptionError(f'environment variable {name}={raw!r} is not a positive {kind.__name__} ({what}); '
                          f'unset it or give e.g. {default}')
    return value


class Item:
    """One image to predict: where it came from, and (lazily) its pixels.

    Attributes:
        source: the user's input (path / URL / ``'<ndarray #i>'``).
        input_path: PaddleX ``input_path`` (file path or URL; None for arrays).
        index: position in the flattened input list.
        array: the image for ndarray inputs.
        error: an :class:`InputError` found while expanding (e.g. an empty directory).
        center_scale: ``(center, scale)`` in pixels from PaddleX's dict input (either may be None), else None.
    """

    __slots__ = ('source', 'input_path', 'index', 'array', 'error', 'center_scale')

    def __init__(self, source, input_path=None, index=0, array=None, error=None, center_scale=None):
        self.source, self.input_path, self.index, self.array, self.error = source, input_path, index, array, error
        self.center_scale = center_scale

    @property
    def name(self):
        """A short name for messages and output files."""
        return self.input_path if self.input_path is not None else self.source


def _is_url(s):
    return s.startswith(('http://', 'https://'))


_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


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
        elif isinstance(entry, dict):
            items.append(_dict_item(entry, idx))
        elif isinstance(entry, (str, os.PathLike)):
            s = os.fspath(entry)
            if _is_url(s):
                items.append(Item(s, s, idx))
            elif _SCHEME.match(s):
                items.append(Item(s, s, idx, error=InputError(
                    f'{s}: the {s.split(":", 1)[0]}:// scheme is not supported; give an http(s) URL or a local '
                    'file path')))
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


def _dict_item(entry, idx):
    """PaddleX's dict input ``{'img' | 'img_path', 'center', 'scale'}`` (what its pipeline passes)."""
    from .paddlex_geometry import parse_paddlex_dict_input
    name = f'input #{idx} (dict)'
    try:
        src, center, scale = parse_paddlex_dict_input(entry)
    except (TypeError, ValueError) as e:
        return Item(name, None, idx, error=InputError(f'{name}: {e}; give {{"img" or "img_path": image, "center": '
                                                      '[x, y], "scale": [w, h]}} (pixels)'))
    # PaddleX keeps an img_path given beside an array as input_path
    path = src if isinstance(src, str) else entry.get('img_path') if isinstance(entry.get('img_path'), str) else None
    if isinstance(src, np.ndarray):
        return Item(name if path is None else path, path, idx, array=src, center_scale=(center, scale))
    return Item(src, src, idx, center_scale=(center, scale))


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
    max_pixels = limit('KPT_PLUGIN_MAX_PIXELS')
    if h * w > max_pixels:
        raise InputError(f'{name}: image of {w}x{h} pixels exceeds the limit of {max_pixels} pixels '
                         '(KPT_PLUGIN_MAX_PIXELS); resize it first')
    return np.ascontiguousarray(img)


def _read_url(url):
    """The body of ``url``, within a total deadline and a byte cap (a slow or huge server cannot hold a batch)."""
    timeout, cap = limit('KPT_PLUGIN_URL_TIMEOUT'), limit('KPT_PLUGIN_MAX_BYTES')
    deadline = time.monotonic() + timeout
    what = 'check the URL and the network, or download the image and pass the file'
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - user-given image URL
            size = resp.headers.get('Content-Length', '')
            if size.isdigit() and int(size) > cap:
                raise InputError(f'{url}: {int(size)} bytes exceed the limit of {cap} (KPT_PLUGIN_MAX_BYTES)')
            chunks, total = [], 0
            while True:
                # read1 returns what one socket read gives, so the deadline is checked while bytes trickle in
                block = resp.read1(1 << 16)
                if not block:
                    break
                total += len(block)
                if total > cap:
                    raise InputError(f'{url}: body exceeds the limit of {cap} bytes (KPT_PLUGIN_MAX_BYTES)')
                if time.monotonic() > deadline:
                    raise InputError(f'{url}: download did not finish within {timeout:g} s '
                                     f'(KPT_PLUGIN_URL_TIMEOUT); {what}')
                chunks.append(block)
            return b''.join(chunks)
    except urllib.error.HTTPError as e:
        raise InputError(f'{url}: HTTP {e.code} {e.reason}') from None
    except http.client.IncompleteRead as e:
        raise InputError(f'{url}: the server closed the connection after {len(e.partial)} bytes; {what}') from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, 'reason', None) or e or type(e).__name__
        raise InputError(f'{url}: cannot download ({reason}); {what}') from None


def _peek_size(data, name):
    # refuse huge images from their header, before decoding allocates the pixels
    from PIL import Image
    import io
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise InputError(f'{name}: image exceeds the limit of {limit("KPT_PLUGIN_MAX_PIXELS")} pixels '
                         '(KPT_PLUGIN_MAX_PIXELS) by far; resize it first') from None
    except Exception:  # noqa: BLE001 - unknown to PIL: let OpenCV decide below
        return
    max_pixels = limit('KPT_PLUGIN_MAX_PIXELS')
    if w * h > max_pixels:
        raise InputError(f'{name}: image of {w}x{h} pixels exceeds the limit of {max_pixels} pixels '
                         '(KPT_PLUGIN_MAX_PIXELS); resize it first')


def decode_image(data, name):
    """Decode encoded image bytes into BGR uint8 (gray and BGRA 8-bit images are converted)."""
    if len(data) == 0:
        raise InputError(f'{name}: file is empty (0 bytes)')
    _peek_size(data, name)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except Exception as e:  # noqa: BLE001 - whatever the decoder raises is this input's problem only
        raise InputError(f'{name}: the image decoder failed ({type(e).__name__}: {str(e).strip()[:120]}); '
                         'the file is corrupt or not an image') from None
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
    cap = limit('KPT_PLUGIN_MAX_BYTES')
    try:
        size = osp.getsize(src)
        if size > cap:
            raise InputError(f'{src}: {size} bytes exceed the limit of {cap} for one image (KPT_PLUGIN_MAX_BYTES); '
                             'is it really an image?')
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
    if arr.shape[1] == 5 and ((arr[:, 4] < 0) | (arr[:, 4] > 1)).any():
        i = int(np.nonzero((arr[:, 4] < 0) | (arr[:, 4] > 1))[0][0])
        raise InputError(f'{name}: box #{i} has score {arr[i, 4]:g}, outside [0, 1]; the 5th value is a detection '
                         'score')
    bad = np.nonzero((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]))[0]
    if len(bad):
        raise InputError(f'{name}: box #{bad[0]} {arr[bad[0], :4].tolist()} has x2 <= x1 or y2 <= y1 '
                         '(boxes are [x1, y1, x2, y2] in pixels)')
    return arr


def _coco_image_id(v, where):
    # COCO ids are ints; detectors sometimes write digit strings
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise InputError(f'{where}: image_id {v!r} is not an integer image id')


def _xywh_row(det, where):
    bbox = det.get('bbox')
    if not isinstance(bbox, (list, tuple)) or len(bbox) < 4:
        raise InputError(f'{where}: "bbox" must be [x, y, w, h]; got {bbox!r:.60}')
    try:
        x, y, w, h = (float(v) for v in bbox[:4])
        score = float(det.get('score', 1.0))
    except (TypeError, ValueError):
        raise InputError(f'{where}: "bbox" / "score" must be numbers; got {bbox!r:.60}') from None
    return [x, y, x + w, y + h, score]


def read_boxes_file(path):
    """Read person boxes from a json file.

    Accepted forms: COCO detection results (a list of ``{image_id, bbox: [x, y, w, h], score, (category_id)}``);
    a COCO annotation file (``{images, annotations}``: its person ``bbox`` es, score 1); or a mapping
    ``{file name: [[x1, y1, x2, y2, (score)], ...]}``. Only category 1 (person) is kept. Detections match an image
    by ``int(file stem) == image_id`` (COCO's file names); annotation files also by ``file_name``.

    Returns:
        dict: key (int image id or file name) -> float64 (N, 5) xyxy+score, or the :class:`InputError` of that
        key's entries (only the images it belongs to fail).
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise InputError(f'{path}: boxes file not found')
    try:
        with open(path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f'{path}: not a valid json file ({e})') from None
    if isinstance(data, dict) and 'annotations' in data and 'images' in data:
        return _read_coco_annotations(path, data)
    if isinstance(data, list):
        table, errors = {}, {}
        for i, det in enumerate(data):
            where = f'{path} entry #{i}'
            if not isinstance(det, dict) or 'image_id' not in det or 'bbox' not in det:
                raise InputError(f'{where}: not a COCO detection {{image_id, bbox, score}}; give COCO detection '
                                 'results, a COCO annotation file or a {file name: boxes} mapping')
            key = _coco_image_id(det['image_id'], where)
            if det.get('category_id', 1) != 1:
                continue
            try:
                table.setdefault(key, []).append(_xywh_row(det, where))
            except InputError as e:
                errors.setdefault(key, e)
        out = {}
        for k, v in table.items():
            try:
                out[k] = normalize_boxes(v, f'{path} (image_id {k})')
            except InputError as e:
                out[k] = e
        out.update(errors)
        return out
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            try:
                out[k] = normalize_boxes(v, f'{path} ({k})')
            except InputError as e:
                out[k] = e
        return out
    raise InputError(f'{path}: expected COCO detection results, a COCO annotation file or a {{file name: boxes}} '
                     'mapping')


def _read_coco_annotations(path, data):
    """Person boxes of a COCO annotation file, keyed by image id and by file name."""
    names = {}
    for i, im in enumerate(data.get('images') or []):
        if isinstance(im, dict) and 'id' in im:
            names[_coco_image_id(im['id'], f'{path} images[{i}]')] = im.get('file_name')
    table, errors = {}, {}
    for i, ann in enumerate(data.get('annotations') or []):
        where = f'{path} annotations[{i}]'
        if not isinstance(ann, dict) or 'image_id' not in ann or 'bbox' not in ann:
            raise InputError(f'{where}: not a COCO annotation {{image_id, bbox}}')
        key = _coco_image_id(ann['image_id'], where)
        if ann.get('category_id', 1) != 1 or ann.get('iscrowd', 0):
            continue
        try:
            table.setdefault(key, []).append(_xywh_row(dict(ann, score=1.0), where))
        except InputError as e:
            errors.setdefault(key, e)
    out = {}
    for key in set(names) | set(table) | set(errors):
        try:
            value = errors[key] if key in errors else normalize_boxes(table.get(key, []), f'{path} (image {key})')
        except InputError as e:
            value = e
        out[key] = value
        if names.get(key):
            out[osp.basename(names[key])] = value
    return out


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
        out, matched = [], 0
        for item in items:
            key = next((k for k in _key_candidates(item) if k in bboxes), None)
            found = bboxes[key] if key is not None else None
            matched += key is not None
            if isinstance(found, InputError):
                out.append(found)
                continue
            # an image the detector found no person in has no entry: no boxes, no keypoints
            try:
                out.append(normalize_boxes(found, item.name) if found is not None else np.zeros((0, 4)))
            except InputError as e:
                out.append(e)
        if bboxes and not matched:
            raise InputError(f'bboxes: none of the {len(bboxes)} keys (e.g. {next(iter(bboxes))!r}) matches an '
                             f'input (e.g. {items[0].name!r}); keys are file names, or COCO image ids matching '
                             'numeric file stems')
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
