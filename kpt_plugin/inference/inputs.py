"""Inputs of :meth:`KeypointPredictor.predict`: arrays, files, URLs, directories, lists; person boxes.

Every problem raises :class:`InputError` with one line naming the input and saying what to do.
"""
import http.client
import json
import logging
import os
import os.path as osp
import re
import time
import urllib.error
import urllib.request

import cv2
import numpy as np

from ..errors import InputError, OptionError

__all__ = ['InputError', 'IMAGE_EXTS', 'Item', 'expand_inputs', 'load_image', 'limit', 'check_limits',
           'check_array', 'normalize_boxes', 'BoxTable', 'read_boxes_file', 'check_boxes_match', 'boxes_for_items']

logger = logging.getLogger('kpt_plugin')

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


def check_limits():
    """Validate every limit of :data:`LIMITS` now (a bad variable fails the run at its start, naming itself)."""
    for name in LIMITS:
        limit(name)


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
                raise InputError(f'{url}: {int(size)} bytes exceed the limit of {cap} (KPT_PLUGIN_MAX_BYTES); raise '
                                 'the limit if the image is really that big')
            chunks, total = [], 0
            while True:
                # read1 returns what one socket read gives, so the deadline is checked while bytes trickle in
                block = resp.read1(1 << 16)
                if not block:
                    break
                total += len(block)
                if total > cap:
                    raise InputError(f'{url}: body exceeds the limit of {cap} bytes (KPT_PLUGIN_MAX_BYTES); raise the '
                                     'limit if the image is really that big')
                if time.monotonic() > deadline:
                    raise InputError(f'{url}: download did not finish within {timeout:g} s '
                                     f'(KPT_PLUGIN_URL_TIMEOUT); {what}')
                chunks.append(block)
            if size.isdigit() and total < int(size):
                # read1 ends at EOF without raising IncompleteRead: a cut body must not pass as a corrupt image
                raise http.client.IncompleteRead(b''.join(chunks), int(size) - total)
            return b''.join(chunks)
    except urllib.error.HTTPError as e:
        raise InputError(f'{url}: HTTP {e.code} {e.reason}; check the URL') from None
    except http.client.IncompleteRead as e:
        raise InputError(f'{url}: the server closed the connection after {len(e.partial)} bytes'
                         + (f' of {len(e.partial) + e.expected}' if isinstance(e.expected, int) else '')
                         + f'; {what}') from None
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
        raise InputError(f'{name}: file is empty (0 bytes); give a real image (an interrupted copy?)')
    _peek_size(data, name)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except Exception as e:  # noqa: BLE001 - whatever the decoder raises is this input's problem only
        raise InputError(f'{name}: the image decoder failed ({type(e).__name__}: {str(e).strip()[:120]}); '
                         'the file is corrupt or not an image') from None
    if img is None:
        raise InputError(f'{name}: not a readable image (corrupt or unsupported format; supported: '
                         f'{", ".join(IMAGE_EXTS)}); replace or re-save the file')
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
        raise InputError(f'{src}: no such file or directory; check the path')
    if not osp.isfile(src):
        raise InputError(f'{src}: not a regular file; give an image file')
    cap = limit('KPT_PLUGIN_MAX_BYTES')
    try:
        size = osp.getsize(src)
        if size > cap:
            raise InputError(f'{src}: {size} bytes exceed the limit of {cap} for one image (KPT_PLUGIN_MAX_BYTES); '
                             'raise the limit if it really is an image')
        with open(src, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise InputError(f'{src}: cannot read ({e.strerror}); check the file and its permissions') from None
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
        raise InputError(f'{name}: boxes contain NaN or infinity; give finite pixel coordinates')
    if arr.shape[1] == 5 and ((arr[:, 4] < 0) | (arr[:, 4] > 1)).any():
        i = int(np.nonzero((arr[:, 4] < 0) | (arr[:, 4] > 1))[0][0])
        raise InputError(f'{name}: box #{i} has score {arr[i, 4]:g}, outside [0, 1]; the 5th value is a detection '
                         'score: give scores in [0, 1]')
    bad = np.nonzero((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]))[0]
    if len(bad):
        raise InputError(f'{name}: box #{bad[0]} {arr[bad[0], :4].tolist()} has x2 <= x1 or y2 <= y1 '
                         '(boxes are [x1, y1, x2, y2] in pixels)')
    return arr


def _coco_image_id(v, where):
    """The key of a detection's ``image_id``: an int (COCO), a digit string as int, any other string as a file
    name or stem (some detectors write those); anything else is an error of the entry."""
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip():
        return v.strip()
    raise InputError(f'{where}: image_id {v!r:.40} is neither an integer image id nor a file name; fix the entry')


def _xywh_row(det, where):
    bbox = det.get('bbox')
    if not isinstance(bbox, (list, tuple)) or len(bbox) < 4:
        raise InputError(f'{where}: "bbox" must be [x, y, w, h]; got {bbox!r:.60}')
    try:
        x, y, w, h = (float(v) for v in bbox[:4])
        score = float(det.get('score', 1.0))
    except (TypeError, ValueError):
        raise InputError(f'{where}: "bbox" / "score" must be numbers; got {bbox!r:.60}, score '
                         f'{det.get("score")!r:.20}') from None
    return [x, y, x + w, y + h, score]


class BoxTable(dict):
    """Boxes read from a json file: key (int image id, or file name / stem) -> float64 (N, 5) xyxy+score, or the
    :class:`InputError` of that key's entries (only the images it belongs to fail).

    Attributes:
        path: the file.
        problems: messages of entries that belong to no image (not a detection, no usable ``image_id``): they are
            skipped; the CLI lists them as failures, the Python API logs them.
    """

    def __init__(self, path):
        super().__init__()
        self.path, self.problems = path, []


def read_boxes_file(path):
    """Read person boxes from a json file (see :class:`BoxTable` for what comes back).

    Accepted forms: COCO detection results (a list of ``{image_id, bbox: [x, y, w, h], score, (category_id)}``);
    a COCO annotation file (``{images, annotations}``: its person ``bbox`` es, score 1); or a mapping
    ``{file name: [[x1, y1, x2, y2, (score)], ...]}``. Only category 1 (person) is kept. Detections match an image
    by ``int(file stem) == image_id`` (COCO's file names) or by a string ``image_id`` equal to the file name or
    stem; annotation files also by ``file_name``. A faulty entry fails its image only; an entry that names no
    image is skipped and listed in ``problems``.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise InputError(f'{path}: boxes file not found; give the path of a COCO detection results json')
    try:
        with open(path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f'{path}: not a valid json file ({e}); give COCO detection results, a COCO annotation '
                         'file or a {file name: boxes} mapping') from None
    except OSError as e:
        raise InputError(f'{path}: cannot read the boxes file ({e.strerror or e})') from None
    if isinstance(data, dict) and 'annotations' in data and 'images' in data:
        return _read_coco_annotations(path, data)
    table = BoxTable(path)
    if isinstance(data, list):
        rows, errors = {}, {}
        for i, det in enumerate(data):
            where = f'{path} entry #{i}'
            if not isinstance(det, dict) or 'image_id' not in det:
                table.problems.append(f'{where}: not a COCO detection {{image_id, bbox, score}} (got {det!r:.60}); '
                                      'the entry was skipped: fix or remove it')
                continue
            try:
                key = _coco_image_id(det['image_id'], where)
            except InputError as e:
                table.problems.append(f'{e}; the entry was skipped')
                continue
            if det.get('category_id', 1) != 1:
                continue
            try:
                rows.setdefault(key, []).append(_xywh_row(det, where))
            except InputError as e:
                errors.setdefault(key, e)
        for k, v in rows.items():
            try:
                table[k] = normalize_boxes(v, f'{path} (image_id {k})')
            except InputError as e:
                table[k] = e
        table.update(errors)
        return table
    if isinstance(data, dict):
        for k, v in data.items():
            try:
                table[k] = normalize_boxes(v, f'{path} ({k})')
            except InputError as e:
                table[k] = e
        return table
    raise InputError(f'{path}: expected COCO detection results, a COCO annotation file or a {{file name: boxes}} '
                     f'mapping, got a json {type(data).__name__}')


def _read_coco_annotations(path, data):
    """Person boxes of a COCO annotation file, keyed by image id and by file name."""
    table, names = BoxTable(path), {}
    for i, im in enumerate(data.get('images') or []):
        where = f'{path} images[{i}]'
        try:
            if not isinstance(im, dict) or 'id' not in im:
                raise InputError(f'{where}: not a COCO image record {{id, file_name}}; fix or remove it')
            names[_coco_image_id(im['id'], where)] = im.get('file_name')
        except InputError as e:
            table.problems.append(f'{e}; the record was skipped')
    rows, errors = {}, {}
    for i, ann in enumerate(data.get('annotations') or []):
        where = f'{path} annotations[{i}]'
        if not isinstance(ann, dict) or 'image_id' not in ann:
            table.problems.append(f'{where}: not a COCO annotation {{image_id, bbox}} (got {ann!r:.60}); the entry '
                                  'was skipped: fix or remove it')
            continue
        try:
            key = _coco_image_id(ann['image_id'], where)
        except InputError as e:
            table.problems.append(f'{e}; the entry was skipped')
            continue
        if ann.get('category_id', 1) != 1 or ann.get('iscrowd', 0):
            continue
        try:
            rows.setdefault(key, []).append(_xywh_row(dict(ann, score=1.0), where))
        except InputError as e:
            errors.setdefault(key, e)
    for key in set(names) | set(rows) | set(errors):
        try:
            value = errors[key] if key in errors else normalize_boxes(rows.get(key, []), f'{path} (image {key})')
        except InputError as e:
            value = e
        table[key] = value
        if isinstance(names.get(key), str) and names[key]:
            table[osp.basename(names[key])] = value
    return table


def _key_candidates(item):
    if item.input_path is None:
        return []
    base = osp.basename(item.input_path.split('?')[0])
    stem = osp.splitext(base)[0]
    keys = [item.input_path, base, stem]
    if stem.isdigit():
        keys.append(int(stem))
    return keys


def check_boxes_match(items, table):
    """The key of ``table`` (a boxes mapping) for each item (None: no boxes); raises :class:`InputError` when no
    key matches any input (the boxes are of other images: a run would silently find 0 persons everywhere)."""
    keys = [next((k for k in _key_candidates(item) if k in table), None) for item in items]
    if table and items and all(k is None for k in keys):
        what = getattr(table, 'path', None) or 'bboxes'
        raise InputError(f'{what}: none of the {len(table)} keys (e.g. {next(iter(table))!r}) matches an input '
                         f'(e.g. {items[0].name!r}); keys are file names, or COCO image ids matching numeric file '
                         'stems: give the boxes of these images')
    return keys


def _coverage_note(what, table, used, missing):
    # an annotation file keys each image by id and by file name (one value object): aliases of a used key are used
    used_values = {id(table[k]) for k in used}
    unused = [k for k in table if k not in used and id(table[k]) not in used_values]
    parts = []
    if missing:
        parts.append(f'{len(missing)} input(s) have no boxes there and get 0 persons (e.g. {missing[0]})')
    if unused:
        parts.append(f'{len(unused)} key(s) match no input (e.g. {unused[0]!r})')
    return f'{what}: ' + '; '.join(parts) + '; check that the boxes belong to these images' if parts else None


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
        keys = check_boxes_match(items, bboxes)
        out, used, missing = [], set(), []
        for item, key in zip(items, keys):
            found = bboxes[key] if key is not None else None
            if key is None:
                missing.append(item.name)
            else:
                used.add(key)
            if isinstance(found, InputError):
                out.append(found)
                continue
            # an image the detector found no person in has no entry: no boxes, no keypoints
            try:
                out.append(normalize_boxes(found, item.name) if found is not None else np.zeros((0, 4)))
            except InputError as e:
                out.append(e)
        what = getattr(bboxes, 'path', None) or 'bboxes'
        for problem in getattr(bboxes, 'problems', ()):
            logger.warning('%s', problem)
        note = _coverage_note(what, bboxes, used, missing)
        if note:
            logger.warning('%s', note)
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
