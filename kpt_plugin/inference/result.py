"""PaddleX-style keypoint result: ``input_path``, ``kpts``; ``print``, ``save_to_json``, ``save_to_img``,
``.json``, ``.img``, ``.str``."""
import json
import os
import os.path as osp
import time

import numpy as np

from weight_convert.io import atomic_write_bytes

__all__ = ['KptResult', 'atomic_write_bytes', 'draw_keypoints']

_IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
_VISUALIZER = None




def _visualizer():
    global _VISUALIZER
    if _VISUALIZER is None:
        from mmpose.datasets.datasets.utils import parse_pose_metainfo
        from mmpose.visualization import PoseLocalVisualizer
        _VISUALIZER = PoseLocalVisualizer(name=f'kpt_plugin_{os.getpid()}_{id(object())}', radius=3,
                                          line_width=1)
        import mmpose
        meta = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_', 'datasets', 'coco.py')
        if not osp.isfile(meta):
            meta = 'configs/_base_/datasets/coco.py'  # mmpose resolves it from its package
        _VISUALIZER.set_dataset_meta(parse_pose_metainfo(dict(from_file=meta)))
    return _VISUALIZER


def draw_keypoints(img_bgr, kpts, kpt_thr=0.3):
    """Draw keypoints (and boxes) with MMPose's ``PoseLocalVisualizer`` (COCO skeleton); returns BGR uint8."""
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    rgb = np.ascontiguousarray(img_bgr[:, :, ::-1])
    if not kpts:
        return img_bgr.copy()
    inst = InstanceData()
    arr = np.asarray([k['keypoints'] for k in kpts], dtype=np.float32)
    inst.keypoints = arr[..., :2]
    inst.keypoint_scores = arr[..., 2]
    if all('bbox' in k for k in kpts):
        inst.bboxes = np.asarray([k['bbox'][:4] for k in kpts], dtype=np.float32)
    sample = PoseDataSample()
    sample.pred_instances = inst
    vis = _visualizer()
    drawn = vis.add_datasample('result', rgb, sample, draw_gt=False, draw_bbox='bboxes' in inst, kpt_thr=kpt_thr,
                               show=False)
    return np.ascontiguousarray(drawn[:, :, ::-1])


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

    Keys: ``input_path`` (str or None for arrays), ``page_index`` (always None), ``kpts`` (one dict per person:
    ``keypoints`` [[x, y, score]] x 17 in image pixels, ``kpt_score`` = mean joint score, and ``bbox``
    [x1, y1, x2, y2, (score)] when boxes were given) and, for an input that failed, ``error`` (its message;
    ``kpts`` is then empty). The decoded image is kept in :attr:`input_img` (BGR), not in the dict.
    """

    def __init__(self, data, input_img=None, name=None):
        super().__init__(data)
        self.input_img = input_img
        self._name = name

    @property
    def ok(self):
        """False when this input failed (see ``self['error']``)."""
        return 'error' not in self

    def _stem(self):
        src = self.get('input_path') or self._name or f'{int(time.time())}'
        base = osp.basename(str(src).split('?')[0].rstrip('/')) or 'image'
        return osp.splitext(base)[0], osp.splitext(base)[1].lower()

    # ------------------------------------------------------------------ PaddleX interface
    @property
    def json(self):
        """``{'res': plain dict}`` (JSON-serialisable)."""
        return {'res': _plain(dict(self))}

    @property
    def str(self):
        """``{'res': formatted json string}``."""
        return {'res': json.dumps(self.json['res'], indent=4, ensure_ascii=False)}

    @property
    def img(self):
        """``{'res': PIL.Image}`` with the skeleton drawn by MMPose's visualizer."""
        from PIL import Image
        if self.input_img is None:
            raise ValueError(f'{self.get("input_path") or self._name}: no image to draw ({self.get("error")})')
        return {'res': Image.fromarray(draw_keypoints(self.input_img, self['kpts'])[:, :, ::-1])}

    def print(self, format_json=True, indent=4, ensure_ascii=False):
        """Print the result (json-formatted by default)."""
        data = self.json['res']
        print(json.dumps(data, indent=indent if format_json else None, ensure_ascii=ensure_ascii))

    def _target(self, save_path, suffix, default_ext):
        save_path = os.fspath(save_path)
        if save_path.lower().endswith(suffix):
            return save_path
        stem, ext = self._stem()
        ext = default_ext or (ext if ext in _IMG_SUFFIXES else '.jpg')
        return osp.join(save_path, f'{stem}_res{ext}')

    def json_path(self, save_path):
        """Where :meth:`save_to_json` writes for ``save_path``."""
        return osp.abspath(self._target(save_path, '.json', '.json'))

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
        text = json.dumps(self.json['res'], indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
        try:
            data = text.encode('utf-8')
        except UnicodeEncodeError:
            # a file name that is not UTF-8 (kept by Python as surrogate escapes): write it \u-escaped
            data = json.dumps(self.json['res'], indent=indent, ensure_ascii=True, allow_nan=False).encode('ascii')
        return atomic_write_bytes(target, data)

    def save_to_img(self, save_path):
        """Draw and write the image to ``save_path`` (an image file, or a directory: ``<stem>_res.<ext>``);
        atomic.

        Returns:
            str: the file written.
        """
        import cv2
        target = self.img_path(save_path)
        if self.input_img is None:
            raise ValueError(f'{self.get("input_path") or self._name}: no image to draw ({self.get("error")})')
        ext = osp.splitext(target)[1] or '.jpg'
        ok, buf = cv2.imencode(ext, draw_keypoints(self.input_img, self['kpts']))
        if not ok:
            raise ValueError(f'{target}: OpenCV cannot encode {ext} images')
        return atomic_write_bytes(target, buf.tobytes())

    def save_all(self, save_path):
        """``save_to_json`` + ``save_to_img`` into the directory ``save_path``."""
        return [self.save_to_json(save_path), self.save_to_img(save_path)]

    def __str__(self):
        return self.str['res']
