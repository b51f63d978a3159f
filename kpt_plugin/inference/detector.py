"""``create_model('PicoDet-S_pedestrian_320')``: PaddleX's object-detection module on our PyTorch PicoDet.

preprocess (ppdet: bicubic stretch to S x S, ImageNet normalisation) -> network -> decode + ppdet's MultiClassNMS ->
boxes in image pixels, clipped to the image (as PaddleX) -> :class:`DetResult` (PaddleX's ``boxes: [{cls_id,
label, score, coordinate}]``). Batches of images run as one network call (all share the S x S input).
"""
import json
import logging
import os.path as osp
import random
import time

import numpy as np
import torch

from weight_convert.io import atomic_write_bytes, load_checkpoint, strip_module_prefix

from ..errors import InputError, OptionError, WeightsError
from .device import parse_device
from .inputs import expand_inputs, load_image

__all__ = ['DetectorPredictor', 'DetResult', 'build_detector']

logger = logging.getLogger('kpt_plugin')


def build_detector(config, checkpoint, device='cpu'):
    """Build the mmdet detector of ``config`` and load ``checkpoint`` strictly (one clear error when it does not
    fit)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    try:
        ckpt = load_checkpoint(checkpoint, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise WeightsError(f'{checkpoint}: not a readable PyTorch checkpoint ({type(e).__name__}: {e}); pass a .pth '
                           'written by `kpt-plugin convert`, or the original Paddle weights') from None
    state = strip_module_prefix(ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {})
    ref = model.state_dict()
    missing = [k for k in ref if k not in state and not k.endswith('num_batches_tracked')]
    unknown = [k for k in state if k not in ref]
    shapes = [k for k in state if k in ref and tuple(state[k].shape) != tuple(ref[k].shape)]
    if missing or unknown or shapes:
        raise WeightsError(f'{checkpoint}: weights do not fit {osp.basename(config)}: {len(missing)} missing, '
                           f'{len(unknown)} unknown, {len(shapes)} mis-shaped tensors (e.g. '
                           f'{(missing + unknown + shapes)[:3]}); is this a PicoDet checkpoint?')
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise WeightsError(f'{checkpoint}: tensor {bad} holds NaN or inf values; convert the original weights again')
    model.load_state_dict({k: state.get(k, v) for k, v in ref.items()}, strict=True)
    model.cfg = cfg
    return model.to(device).eval()


class DetResult(dict):
    """One image's detections, PaddleX's object-detection result.

    Keys: ``input_path`` (None for arrays), ``page_index`` (None, as PaddleX's detector results), ``boxes``
    (``[{'cls_id', 'label', 'score', 'coordinate': [x1, y1, x2, y2]}]``, image pixels, score-sorted) and, for an
    input that failed, ``error``. The image is kept in :attr:`input_img` (BGR).
    """

    def __init__(self, data, input_img=None):
        super().__init__(data)
        self.input_img = input_img
        self._rand_fn = None

    @property
    def ok(self):
        return 'error' not in self

    def _stem(self):
        if self.get('input_path') is None:
            self._rand_fn = self._rand_fn or f'{int(time.time())}_{random.randint(1000, 9999)}'
            return self._rand_fn, '.png'
        stem, ext = osp.splitext(osp.basename(str(self['input_path']).split('?')[0]))
        return stem, ext if ext.lower() in ('.jpg', '.jpeg', '.png', '.bmp') else '.png'

    @property
    def json(self):
        return {'res': json.loads(json.dumps(dict(self), allow_nan=False))}

    @property
    def str(self):
        return {'res': dict(self)}

    def print(self, json_format=False, indent=4, ensure_ascii=False, format_json=None):
        """As PaddleX: ``{'res': {...}}``, or JSON with ``json_format=True``."""
        if format_json is not None:
            json_format = format_json
        print(json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii) if json_format else self.str)

    def _drawn(self):
        import cv2
        if self.input_img is None:
            raise ValueError(f'{self.get("input_path")}: no image to draw ({self.get("error")})')
        img = self.input_img.copy()
        t = max(1, int(round(max(img.shape[:2]) / 320)))
        for b in self['boxes']:
            x1, y1, x2, y2 = (int(round(v)) for v in b['coordinate'])
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), t)
            cv2.putText(img, f'{b["label"]} {b["score"]:.2f}', (x1, max(0, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * t, (0, 0, 255), t)
        return img

    @property
    def img(self):
        from PIL import Image
        return {'res': Image.fromarray(self._drawn()[:, :, ::-1])}

    def save_to_json(self, save_path, indent=4, ensure_ascii=False):
        target = save_path if str(save_path).lower().endswith('.json') else osp.join(
            save_path, f'{self._stem()[0]}_res.json')
        text = json.dumps(self.json['res'], indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
        return atomic_write_bytes(target, text.encode('utf-8', 'surrogateescape'))

    def save_to_img(self, save_path):
        import cv2
        stem, ext = self._stem()
        target = save_path if str(save_path).lower().endswith(('.jpg', '.jpeg', '.png', '.bmp')) else osp.join(
            save_path, f'{stem}_res{ext}')
        ok, buf = cv2.imencode(osp.splitext(target)[1], self._drawn())
        if not ok:
            raise ValueError(f'{target}: OpenCV cannot encode this image type')
        return atomic_write_bytes(target, buf.tobytes())


class DetectorPredictor:
    """PP-PicoDet person detector (what :func:`~kpt_plugin.inference.predictor.create_model` returns for a
    detector name).

    Attributes:
        model_name, config, checkpoint, device, input_size (S, S), threshold (PaddleX's default 0.5),
        labels (class names), model (the mmdet detector), timings.
    """

    def __init__(self, config, checkpoint, model_name=None, device=None, threshold=0.5):
        self.device = parse_device(device)
        self.config, self.checkpoint, self.model_name = config, checkpoint, model_name
        self.threshold = _check_threshold(threshold)
        self.model = build_detector(config, checkpoint, self.device)
        size = self.model.cfg.get('input_size', 320)
        self.input_size = (int(size), int(size))
        self.labels = tuple(self.model.cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {}).get(
            'classes', ('person', )))
        self.timings = dict(load=0., preprocess=0., model=0., postprocess=0., images=0, instances=0)

    @torch.inference_mode()
    def detect(self, images):
        """Detections of BGR images: per image a float32 (K, 6) ``[cls, score, x1, y1, x2, y2]`` array, all scores
        >= the NMS threshold (0.025), image pixels, clipped to the image, in ppdet's NMS order."""
        from kpt_plugin.models.detection.preprocess import preprocess_image
        if not images:
            return []
        t0 = time.perf_counter()
        inputs, factors = zip(*(preprocess_image(img, self.input_size[0]) for img in images))
        x = torch.from_numpy(np.concatenate(inputs)).to(self.device)
        t1 = time.perf_counter()
        head = self.model.bbox_head
        boxes, scores = head.decode(*head(self.model.neck(self.model.backbone(x))))
        t2 = time.perf_counter()
        out = []
        for img, b, s, (fy, fx) in zip(images, boxes, scores, factors):
            dets = head.post_process(b.float(), s.float(), (float(fx), float(fy))).cpu().numpy().astype(np.float32)
            h, w = img.shape[:2]
            # PaddleX's detector clips to the image; ppdet's post_process does not
            np.clip(dets[:, 2::2], 0, w, out=dets[:, 2::2])
            np.clip(dets[:, 3::2], 0, h, out=dets[:, 3::2])
            out.append(dets)
        self.timings['preprocess'] += t1 - t0
        self.timings['model'] += t2 - t1
        self.timings['postprocess'] += time.perf_counter() - t2
        return out

    def predict(self, input, batch_size=1, threshold=None, errors='yield'):
        """Detect persons; yields one :class:`DetResult` per image (PaddleX's object-detection result).

        Args:
            input: image(s) as :meth:`~kpt_plugin.inference.predictor.KeypointPredictor.predict` takes them.
            batch_size (int): images per network call.
            threshold (float, optional): keep boxes with score > threshold (default :attr:`threshold`).
            errors (str): ``'yield'`` (a bad input yields a result with ``error``) or ``'raise'``.
        """
        thr = self.threshold if threshold is None else _check_threshold(threshold)
        items = expand_inputs(input)
        for i in range(0, len(items), batch_size):
            chunk, imgs = items[i:i + batch_size], []
            for item in chunk:
                try:
                    imgs.append(load_image(item))
                except InputError as e:
                    if errors == 'raise':
                        raise
                    logger.warning('%s', e)
                    imgs.append(e)
            good = [im for im in imgs if not isinstance(im, Exception)]
            dets = iter(self.detect(good))
            for item, img in zip(chunk, imgs):
                if isinstance(img, Exception):
                    yield DetResult(dict(input_path=item.input_path, page_index=None, boxes=[], error=str(img)))
                    continue
                d = next(dets)
                d = d[d[:, 1] > thr]
                boxes = [dict(cls_id=int(c), label=self.labels[int(c)] if int(c) < len(self.labels) else str(int(c)),
                              score=float(s), coordinate=[float(v) for v in xyxy])
                         for c, s, *xyxy in d.tolist()]
                self.timings['images'] += 1
                self.timings['instances'] += len(boxes)
                yield DetResult(dict(input_path=item.input_path, page_index=None, boxes=boxes), img)

    __call__ = predict

    def __repr__(self):
        return (f'{type(self).__name__}(model_name={self.model_name!r}, input_size={self.input_size}, '
                f'device={self.device!r}, threshold={self.threshold})')


def _check_threshold(thr):
    if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0 <= thr <= 1:
        raise OptionError(f'threshold must be a number in [0, 1], got {thr!r}')
    return float(thr)
