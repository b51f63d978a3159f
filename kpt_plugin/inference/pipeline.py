"""``kpt_plugin.create_pipeline('human_keypoint_detection')``: PaddleX's human keypoint pipeline, PicoDet -> TinyPose.

Per batch of images: the detector finds persons (score > ``det_threshold``, boxes clipped to the image), each box
becomes PaddleX's center/scale (``_box_xyxy2cs``, in the detector's float32), and every person of the batch runs
through the keypoint network together, in fixed-size chunks. Results are PaddleX's pipeline results:
``{'input_path', 'boxes': [{'coordinate', 'det_score', 'keypoints', 'kpt_score'}]}``.
"""
import importlib.util
import logging
import os

import numpy as np

from ..errors import InputError, OptionError
from .inputs import expand_inputs, load_image
from .result import KptResult

__all__ = ['create_pipeline', 'KeypointPipeline', 'PIPELINES', 'DEFAULT_DET_MODEL']

logger = logging.getLogger('kpt_plugin')

PIPELINES = ('human_keypoint_detection', )
#: PaddleX's config names PP-YOLOE-S_human, whose weights are not available here; PP-TinyPose's own detector is
DEFAULT_DET_MODEL = 'PicoDet-S_pedestrian_320'


class KeypointPipeline:
    """Detector + keypoint model (what :func:`create_pipeline` returns).

    Attributes:
        det_model (DetectorPredictor), kpt_model (KeypointPredictor), det_threshold, batch_size.
    """

    def __init__(self, det_model, kpt_model, det_threshold=0.5, batch_size=1):
        self.det_model, self.kpt_model = det_model, kpt_model
        self.det_threshold = _threshold(det_threshold)
        self.batch_size = batch_size

    def wait(self):
        """Finish both models' background work asked for or deferred so far (``KeypointPredictor.wait``)."""
        self.det_model.wait()
        self.kpt_model.wait()

    def _persons(self, images, threshold):
        """Per image the detections kept (float32 (K, 6)) and the keypoint rows of each (all images at once)."""
        dets = [d[d[:, 1] > threshold] for d in self.det_model.detect(images, min_score=threshold)]
        geometry = self.kpt_model.geometry
        jobs = [(img, *geometry.box(row[2:6])) for img, d in zip(images, dets) for row in d]
        return dets, self.kpt_model.run_jobs(jobs)

    def predict(self, input, batch_size=None, det_threshold=None, errors='yield'):
        """Persons and their keypoints; yields one :class:`PipelineResult` per image, in input order.

        Args:
            input: image(s) as :meth:`KeypointPredictor.predict` takes them (arrays, paths, URLs, directories).
            batch_size (int, optional): images per detector / keypoint pass (default :attr:`batch_size`).
            det_threshold (float, optional): detector score threshold (default :attr:`det_threshold`).
            errors (str): ``'yield'`` (a bad input yields a result with ``error``) or ``'raise'``.
        """
        thr = self.det_threshold if det_threshold is None else _threshold(det_threshold)
        batch_size = batch_size or self.batch_size
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise OptionError(f'batch_size must be a positive integer, got {batch_size!r}')
        items = expand_inputs(input)
        for i in range(0, len(items), batch_size):
            yield from self._run_batch(items[i:i + batch_size], thr, errors)

    def _run_batch(self, chunk, thr, errors):
        imgs = []
        for item in chunk:
            try:
                imgs.append(load_image(item))
            except InputError as e:
                if errors == 'raise':
                    raise
                logger.warning('%s', e)
                imgs.append(e)
        good = [im for im in imgs if not isinstance(im, Exception)]
        dets, (kps, scores, finite) = self._persons(good, thr) if good else ([], ([], [], []))
        dets, k = iter(dets), 0
        for item, img in zip(chunk, imgs):
            if isinstance(img, Exception):
                yield PipelineResult(dict(input_path=item.input_path, boxes=[], error=str(img)), None, item.name)
                continue
            boxes = []
            d = next(dets)
            if not all(finite[k:k + len(d)]):
                k += len(d)
                msg = f'{item.name}: the keypoint network gave NaN or inf outputs; the weights are corrupt'
                if errors == 'raise':
                    raise InputError(msg)
                yield PipelineResult(dict(input_path=item.input_path, boxes=[], error=msg), None, item.name)
                continue
            for row in d:
                boxes.append(dict(coordinate=[float(v) for v in row[2:6]], det_score=float(row[1]),
                                  keypoints=kps[k], kpt_score=scores[k]))
                k += 1
            yield PipelineResult(dict(input_path=item.input_path, boxes=boxes), img, item.name)

    __call__ = predict

    def __repr__(self):
        return f'{type(self).__name__}(det_model={self.det_model!r}, kpt_model={self.kpt_model!r})'


class PipelineResult(KptResult):
    """PaddleX's pipeline result: ``input_path`` and ``boxes`` (each person: ``coordinate`` [x1, y1, x2, y2],
    ``det_score``, ``keypoints`` 17 x [x, y, score], ``kpt_score``); print / save_to_json / save_to_img as
    :class:`~kpt_plugin.inference.result.KptResult` (skeletons drawn, no boxes, as PaddleX)."""

    def _persons(self):
        return self['boxes']


def _threshold(thr):
    if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0 <= thr <= 1:
        raise OptionError(f'det_threshold must be a number in [0, 1], got {thr!r}')
    return float(thr)


def _in_zoo(name):
    from ..zoo import MODELS
    return name in MODELS


def _sub_modules(config):
    """``(det, kpt)`` settings from a PaddleX pipeline config (a dict or a .yaml path), or empty dicts."""
    if config is None:
        return {}, {}
    if isinstance(config, (str, os.PathLike)):
        import yaml
        with open(config, encoding='utf-8') as f:
            config = yaml.safe_load(f)
    sub = (config or {}).get('SubModules', {})
    return dict(sub.get('ObjectDetection') or {}), dict(sub.get('KeypointDetection') or {})


def create_pipeline(pipeline='human_keypoint_detection', config=None, device=None, pp_option=None, use_hpip=False,
                    hpi_config=None, *, det_model=None, kpt_model=None, det_threshold=None, flip=None,
                    det_model_dir=None, kpt_model_dir=None, batch_size=None, backend=None, precision='fp32',
                    calib=None):
    """PaddleX-compatible ``create_pipeline``: PicoDet pedestrian -> PP-TinyPose.

    Args:
        pipeline (str): ``'human_keypoint_detection'``.
        config (dict | str, optional): a PaddleX pipeline config (its ``SubModules`` ``ObjectDetection`` /
            ``KeypointDetection``: ``model_name``, ``model_dir``, ``threshold``, ``flip``, ``use_udp``,
            ``batch_size``); the keyword arguments below override it.
        device, pp_option, use_hpip, hpi_config: as :func:`~kpt_plugin.inference.predictor.create_model` (the
            keypoint model; the detector runs on torch, or, on cpu, on the keypoint model's graph backend).
        det_model (str): detector name (default ``PicoDet-S_pedestrian_320``; also ``..._192``).
        kpt_model (str): keypoint model name (default ``PP-TinyPose_128x96``).
        det_threshold (float): detector score threshold (default 0.5, PaddleX's).
        flip (bool): the keypoint flip test.
        det_model_dir, kpt_model_dir (str, optional): local weights in any form the converter reads.
        batch_size (int, optional): images per pass.
        backend (str, optional): the keypoint model's backend (see ``create_model``).
        precision (str): ``'fp32'`` (default), ``'bf16'`` (both models) or ``'int8'`` (the keypoint model; the
            detector stays fp32: int8 PicoDet loses its detections); accuracy cost in docs/precision.md.
        calib (str, optional): int8 calibration images of the keypoint model (see ``create_model``).

    Returns:
        KeypointPipeline
    """
    from .predictor import create_model
    if pipeline not in PIPELINES:
        raise OptionError(f'unknown pipeline {pipeline!r}; kpt_plugin has {", ".join(PIPELINES)}')
    det_cfg, kpt_cfg = _sub_modules(config)
    for cfg in (det_cfg, kpt_cfg):
        # PaddleX configs may name models we have no zoo entry for (PP-YOLOE-S_human, PicoDet-S with a model_dir)
        if cfg.get('model_name') and cfg.get('model_dir') and not _in_zoo(cfg['model_name']):
            cfg.pop('model_name')
    det_dir, kpt_dir = det_model_dir or det_cfg.get('model_dir'), kpt_model_dir or kpt_cfg.get('model_dir')
    # local weights without a name: their recorded architecture decides (a 256x192 checkpoint stays 256x192)
    kpt = create_model(kpt_model or kpt_cfg.get('model_name') or (None if kpt_dir else 'PP-TinyPose_128x96'),
                       model_dir=kpt_dir, device=device, pp_option=pp_option,
                       use_hpip=use_hpip, hpi_config=hpi_config, backend=backend,
                       flip=bool(kpt_cfg.get('flip') or False) if flip is None else flip,
                       use_udp=kpt_cfg.get('use_udp'), precision=precision, calib=calib)
    runtimes = dict(openvino=('openvino', ), onnxruntime=('onnxruntime', ), auto=('openvino', 'onnxruntime'))
    # a graph backend on cpu: the detector on a graph runtime too (on torch it takes most of the pipeline's time);
    # hpip (auto) measures which runtime is fastest for it here
    graph = kpt.device == 'cpu' and any(importlib.util.find_spec(r) for r in runtimes.get(kpt.backend, ()))
    det_precision = precision
    if precision == 'int8':
        det_precision = 'fp32'
        logger.info("precision='int8': the keypoint model is quantised, the detector stays fp32 (int8 PicoDet "
                    'loses its detections, docs/precision.md)')
    det = create_model(det_model or det_cfg.get('model_name') or (None if det_dir else DEFAULT_DET_MODEL),
                       model_dir=det_dir, device=device, pp_option=pp_option, hpi_config=hpi_config,
                       backend=kpt.backend if graph else 'torch', precision=det_precision,
                       threshold=0.5 if det_cfg.get('threshold') is None else det_cfg['threshold'])
    thr = det.threshold if det_threshold is None else det_threshold
    return KeypointPipeline(det, kpt, det_threshold=thr,
                            batch_size=batch_size or det_cfg.get('batch_size') or 1)
