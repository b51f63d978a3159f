"""PaddleX's keypoint result: ``input_path``, ``kpts``; ``print``, ``save_to_json``, ``save_to_img``, ``.json``,
``.img``, ``.str`` with PaddleX's layouts and file names."""
import json
import os
import os.path as osp
import random
import time

import numpy as np

from weight_convert.io import atomic_write_bytes

from .draw import draw_skeletons

__all__ = ['KptResult']

_IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class KptResult(dict):
    """One image's keypoints, with PaddleX's ``KptResult`` interface.

    Keys: ``input_path`` (str, or None for arrays), ``kpts`` (one dict per person: ``keypoints`` [[x, y, score]] x 17
    in image pixels, not clipped to the image (as PaddleX), ``kpt_score`` = mean joint score; plus ``bbox``
    [x1, y1, x2, y2] and ``det_score`` when boxes were given) and, for an input that failed, ``error`` (its message;
    ``kpts`` is then empty). The decoded image is kept in :attr:`input_img` (BGR), not in the dict.
    """

    def __init__(self, data, input_img=None, name=None):
        super().__init__(data)
        self.input_img = input_img
        self._name = name
        self._rand_fn = None

    @property
    def ok(self):
        """False when this input failed (see ``self['error']``)."""
        return 'error' not in self

    def _input_fn(self):
        # PaddleX names results of array inputs <unix time>_<4 random digits>, fixed per result
        if self.get('input_path') is None:
            if self._rand_fn is None:
                self._rand_fn = f'{int(time.time())}_{random.randint(1000, 9999)}'
            return self._rand_fn
        return osp.basename(str(self['input_path']).split('?')[0].rstrip('/')) or 'image'

    # ------------------------------------------------------------------ PaddleX interface
    @property
    def json(self):
        """``{'res': plain dict}`` (JSON-serialisable)."""
        return {'res': _plain(dict(self))}

    @property
    def str(self):
        """``{'res': the result}`` (PaddleX's ``.str``: a dict, what ``print()`` shows)."""
        return {'res': _plain(dict(self))}

    @property
    def img(self):
        """``{'res': PIL.Image}`` with the skeletons drawn (PaddleX's look, see :mod:`.draw`)."""
        from PIL import Image
        return {'res': Image.fromarray(self._drawn()[:, :, ::-1])}

    def _drawn(self):
        if self.input_img is None:
            raise ValueError(f'{self.get("input_path") or self._name}: no image to draw ({self.get("error")})')
        return draw_skeletons(self.input_img, [k['keypoints'] for k in self._persons()])

    def _persons(self):
        return self['kpts']

    def print(self, json_format=False, indent=4, ensure_ascii=False, format_json=None):
        """Print the result as PaddleX does: ``{'res': {...}}``, or JSON with ``json_format=True``.

        ``format_json`` is the spelling of PaddleX's docs table; its code says ``json_format``: both work.
        """
        if format_json is not None:
            json_format = format_json
        if json_format:
            print(json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii))
        else:
            print(self.str)

    def _target(self, save_path, suffixes, default_ext):
        save_path = os.fspath(save_path)
        if save_path.lower().endswith(suffixes):
            return save_path
        stem, ext = osp.splitext(self._input_fn())
        ext = default_ext or (ext if ext.lower() in _IMG_SUFFIXES else '.png')
        return osp.join(save_path, f'{stem}_res{ext}')

    def json_path(self, save_path):
        """Where :meth:`save_to_json` writes for ``save_path``."""
        return osp.abspath(self._target(save_path, ('.json', ), '.json'))

    def img_path(self, save_path):
        """Where :meth:`save_to_img` writes for ``save_path``."""
        return osp.abspath(self._target(save_path, _IMG_SUFFIXES, None))

    def save_to_json(self, save_path, indent=4, ensure_ascii=False):
        """Write the json to ``save_path`` (a ``.json`` file, or a directory: ``<stem>_res.json``); atomic.

        Strict JSON: a NaN/inf value raises instead of writing the non-JSON token ``NaN``.

        Returns:
            str: the file written.
        """
        target = self.json_path(save_path)
        try:
            text = json.dumps(self.json['res'], indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
            try:
                data = text.encode('utf-8')
            except UnicodeEncodeError:
                # a file name that is not UTF-8 (kept by Python as surrogate escapes): write it \u-escaped
                data = json.dumps(self.json['res'], indent=indent, ensure_ascii=True, allow_nan=False).encode('ascii')
        except ValueError:
            # the predictor turns non-finite outputs into errors, so this is a bug, never a silent NaN file
            raise ValueError(f'{target}: the result holds NaN or infinity, which JSON cannot hold; nothing was written '
                             '(a bug: report it)') from None
        return atomic_write_bytes(target, data)

    def save_to_img(self, save_path):
        """Draw and write the image to ``save_path`` (an image file, or a directory: ``<stem>_res<input suffix or
        .png>``); atomic.

        Returns:
            str: the file written.
        """
        import cv2
        target = self.img_path(save_path)
        ext = osp.splitext(target)[1] or '.png'
        ok, buf = cv2.imencode(ext, self._drawn())
        if not ok:
            raise ValueError(f'{target}: OpenCV cannot encode {ext} images')
        return atomic_write_bytes(target, buf.tobytes())

    def save_all(self, save_path):
        """``save_to_json`` + ``save_to_img`` into the directory ``save_path``."""
        return [self.save_to_json(save_path), self.save_to_img(save_path)]

    def __str__(self):
        return json.dumps(self.json['res'], indent=4, ensure_ascii=False)
