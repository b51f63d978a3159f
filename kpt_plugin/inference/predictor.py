"""``kpt_plugin.create_model``: PaddleX's keypoint-module interface on our PyTorch / ONNX Runtime / OpenVINO model.

preprocess (:mod:`.inputs`, :mod:`.preprocess`) -> run (:mod:`.runtime`) -> postprocess (the codec's vectorised
ppdet decode) -> :class:`~.result.KptResult`.
"""
import copy
import dataclasses
import logging
import os
import os.path as osp
import time
from typing import Any, List, Optional

import numpy as np

from ..errors import InputError, OptionError
from .device import parse_device
from .geometry import make_geometry
from .inputs import Item, boxes_for_items, check_limits, expand_inputs, load_image
from .nets import build_inference_model, input_size_of
from .options import parse_hpi_config
from .quantize import check_precision
from .result import KptResult
from .runtime import BACKENDS, auto_backend, backend_class

__all__ = ['create_model', 'KeypointPredictor', 'BACKENDS']

logger = logging.getLogger('kpt_plugin')


@dataclasses.dataclass
class _Prepared:
    """One input of a batch after loading and cropping (``error`` set instead when it could not be used)."""

    item: Item
    boxes: Optional[np.ndarray]
    img: Optional[np.ndarray] = None
    centers_scales: List[Any] = dataclasses.field(default_factory=list)
    error: Optional[Exception] = None


class KeypointPredictor:
    """PP-TinyPose top-down keypoint predictor (what :func:`create_model` returns).

    Attributes:
        model_name, config, checkpoint, device, flip, backend (one of :data:`BACKENDS`), input_size (w, h),
        pose_model (the network: :class:`~.litehrnet.PlainPoseModel` for a released config, else the MMPose
        ``TopdownPoseEstimator``; both have ``backbone`` and ``head.final_layer``), timings (seconds per stage,
        accumulated: ``load``/``preprocess``/``model``/``postprocess``; reset with :meth:`reset_timings`).
    """

    def __init__(self, config, checkpoint, model_name=None, device=None, flip=False, backend='torch',
                 onnx_path=None, threads=None, geometry='paddlex', use_udp=None, precision='fp32', calib=None):
        if backend not in BACKENDS + ('auto', ):
            raise OptionError(f'unknown backend {backend!r}; choose one of {", ".join(BACKENDS)} or auto')
        self.device = parse_device(device)
        self.precision = check_precision(precision, backend, self.device, onnx_path)
        if backend == 'auto' and (onnx_path is not None or not self.device.startswith('cpu')):
            backend = auto_backend(self.device)  # a given file / a GPU: the static pick (tuned on CPU only)
        self.config, self.checkpoint, self.model_name = config, checkpoint, model_name
        self.flip, self.backend = bool(flip), backend
        self.pose_model = build_inference_model(config, checkpoint, 'cpu')
        self.input_size = input_size_of(self.pose_model)
        self.geometry = make_geometry(geometry, self.input_size, use_udp)
        self._calib = calib
        if backend == 'auto':
            from .runtime.tuning import AutoBackend
            from .runtime.torch import TorchBackend
            ref = TorchBackend(self.pose_model, self.device, flip=self.flip, fold_bn=False, jit=False)
            # an untuned bucket answers on the eager torch net (it folds a copy: the tuning exports the unfolded model)
            fallback = TorchBackend(self.pose_model, self.device, flip=self.flip, jit=False, fold_copy=True)
            self.runner = AutoBackend(lambda b, plan: self._make_runner(b, threads, plan), ref,
                                      arch=osp.splitext(osp.basename(os.fspath(config)))[0],
                                      input_size=self.input_size, flip=self.flip, threads=_threads(threads),
                                      device=self.device, precision=self.precision, fallback=fallback)
        else:
            self.runner = self._make_runner(backend, threads, onnx_path=onnx_path)
        self.reset_timings()

    def _make_runner(self, backend, threads, plan=None, onnx_path=None):
        """The runner of ``backend`` (with fold plan ``plan``, a ``FOLD_PLANS`` key or ``'int8'``)."""
        if self.precision != 'fp32':
            from .quantize import reduced_precision_runner
            return reduced_precision_runner(self, backend, threads, self.precision, calib=self._calib)
        cls = backend_class(backend)
        if backend == 'torch':
            # a candidate of 'auto' folds its own copy: the torch backend folds in place, and the other candidates
            # (and their exports) need the unfolded model
            model = copy.deepcopy(self.pose_model) if plan is not None else self.pose_model
            return cls(model, self.device, flip=self.flip)
        if onnx_path is not None:
            return cls(onnx_path, self.device, threads=threads)
        runner = cls(device=self.device, threads=threads, pose_model=self.pose_model, checkpoint=self.checkpoint,
                     input_size=self.input_size, flip=self.flip)
        if plan is not None:
            # a tuning candidate keeps exporting in the background: the tuning waits for its graph before timing
            # it, and the winner then exports the other batch sizes of a split batch (8 + 4 + 2) without blocking
            if plan != runner.runtime:
                runner.runtime = plan  # export the graph with that runtime's fold plan (same function)
        return runner

    def wait(self):
        """Finish the background work the calls so far asked for or deferred (graph exports and loads, backend auto's
        tunings: :mod:`~.runtime.background`), so the next calls run at steady speed; re-raises its error."""
        wait = getattr(self.runner, 'wait', None)
        if wait is not None:
            wait()

    def reset_timings(self):
        """Zero the per-stage timers."""
        self.timings = dict(load=0., preprocess=0., model=0., postprocess=0., images=0, instances=0)

    # ------------------------------------------------------------------ core
    def heatmaps(self, batch):
        """Run the network (with flip fusion when enabled) on a normalised (N, 3, H, W) float32 batch."""
        return self.runner(batch)

    #: crops per network call: bounds memory for images with many persons (1000 boxes must not need GBs)
    MAX_CROPS = 64

    def _prepare(self, item, boxes):
        t0 = time.perf_counter()
        img = load_image(item)
        t1 = time.perf_counter()
        if isinstance(boxes, Exception):
            raise boxes
        h, w = img.shape[:2]
        if item.center_scale is not None:
            if boxes is not None:
                raise InputError(f'{item.name}: give either a dict input with center/scale or bboxes, not both')
            cs = [self.geometry.given(w, h, *item.center_scale)]
        elif boxes is None:
            cs = [self.geometry.whole(w, h)]
        else:
            outside = np.nonzero((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= w) | (boxes[:, 1] >= h))[0]
            if len(outside):
                raise InputError(f'{item.name}: box #{outside[0]} {boxes[outside[0], :4].tolist()} lies outside the '
                                 f'{w}x{h} image; are the boxes [x1, y1, x2, y2] pixels of this image?')
            cs = [self.geometry.box(b[:4]) for b in boxes]
        self.timings['load'] += t1 - t0
        self.timings['preprocess'] += time.perf_counter() - t1
        return _Prepared(item, boxes, img, cs)

    def _decode_all(self, ready):
        """Run every person of ``ready`` (see :meth:`run_jobs`)."""
        return self.run_jobs([(p.img, c, s) for p in ready for c, s in p.centers_scales])

    def run_jobs(self, jobs):
        """Keypoints of ``[(image, center, scale)]`` (the geometry's units) in chunks of :attr:`MAX_CROPS`.

        Returns:
            tuple: per job ``[x, y, score]`` rows (list), ``kpt_score`` (float) and whether all are finite.
        """
        kps, kpt_scores, finite = [], [], []
        for i in range(0, len(jobs), self.MAX_CROPS):
            part = jobs[i:i + self.MAX_CROPS]
            t0 = time.perf_counter()
            batch = self.geometry.batch(part)
            t1 = time.perf_counter()
            hms = self.heatmaps(batch)
            t2 = time.perf_counter()
            rows, scores = self.geometry.decode(hms, [c for _, c, _ in part], [s for _, _, s in part])
            rows = rows.astype(np.float64)
            # a non-finite output is an error of its image, never a silent NaN in the results
            finite.extend((np.isfinite(rows).all(axis=(1, 2)) & np.isfinite(scores)).tolist())
            # [x, y, score] rows and mean scores for every instance at once; per instance only .tolist()
            kps.extend(rows.tolist())
            kpt_scores.extend(np.asarray(scores, np.float32).tolist())
            self.timings['preprocess'] += t1 - t0
            self.timings['model'] += t2 - t1
            self.timings['postprocess'] += time.perf_counter() - t2
        return kps, kpt_scores, finite

    def _run_batch(self, chunk, errors):
        prepared = []
        for item, boxes in chunk:
            try:
                prepared.append(self._prepare(item, boxes))
            except InputError as e:
                if errors == 'raise':
                    raise
                logger.warning('%s', e)
                prepared.append(_Prepared(item, boxes, error=e))
        ready = [p for p in prepared if p.error is None]
        kps, kpt_scores, finite = self._decode_all(ready)
        results, k = [], 0
        t0 = time.perf_counter()
        for p in prepared:
            n = len(p.centers_scales)
            if p.error is None and not all(finite[k:k + n]):
                k += n
                p.error = InputError(f'{p.item.name}: the network gave NaN or inf outputs; the weights are corrupt '
                                     '(convert the original weights again)')
                if errors == 'raise':
                    raise p.error
                logger.warning('%s', p.error)
            if p.error is not None:
                results.append(KptResult(dict(input_path=p.item.input_path, kpts=[], error=str(p.error)), None,
                                         p.item.name))
                continue
            kpts = []
            for j in range(len(p.centers_scales)):
                entry = dict(keypoints=kps[k], kpt_score=kpt_scores[k])
                if p.boxes is not None:
                    entry['bbox'] = p.boxes[j, :4].tolist()
                    if p.boxes.shape[1] == 5:
                        entry['det_score'] = float(p.boxes[j, 4])
                kpts.append(entry)
                k += 1
            results.append(KptResult(dict(input_path=p.item.input_path, kpts=kpts), p.img, p.item.name))
            self.timings['images'] += 1
            self.timings['instances'] += len(p.centers_scales)
        self.timings['postprocess'] += time.perf_counter() - t0
        return results

    #: default of :meth:`predict`'s ``batch_size`` (``create_model(batch_size=...)`` sets it, as PaddleX's)
    batch_size = 1

    def predict(self, input, batch_size=None, bboxes=None, errors='yield', bbox_thr=None):
        """Predict keypoints; yields one :class:`KptResult` per image, in input order.

        Args:
            input: an H x W x 3 BGR uint8 array, an image path, an http(s) URL, a directory (its images, sorted
                by name) or a list mixing these.
            batch_size (int, optional): images per forward pass (all persons of those images run together, in
                chunks of :attr:`MAX_CROPS`); default :attr:`batch_size`.
            bboxes: person boxes: ``[[x1, y1, x2, y2, (score)], ...]`` for a single image, a list of such lists
                (one per image), a ``{file name: boxes}`` mapping, or the path of a COCO detection json.
                Without boxes the whole image is one person.
            errors (str): ``'yield'`` (default): an input that cannot be used yields a result with
                ``error`` set and empty ``kpts`` (logged as a warning) and the others continue;
                ``'raise'``: raise its :class:`~kpt_plugin.errors.InputError`.
            bbox_thr (float, optional): drop boxes whose score is below this (boxes without a score count as 1).

        Yields:
            KptResult: one per image.
        """
        if errors not in ('yield', 'raise'):
            raise OptionError(f"errors must be 'yield' or 'raise', got {errors!r}")
        batch_size = _check_batch_size(self.batch_size if batch_size is None else batch_size)
        if bbox_thr is not None and not (isinstance(bbox_thr, (int, float)) and 0 <= bbox_thr <= 1):
            raise OptionError(f'bbox_thr must be a number in [0, 1], got {bbox_thr!r}')
        check_limits()  # a bad KPT_PLUGIN_* variable fails here, not in the middle of the batch
        items = expand_inputs(input)
        per_item = boxes_for_items(items, bboxes)
        if bbox_thr is not None:
            per_item = [b[b[:, 4] >= bbox_thr] if isinstance(b, np.ndarray) and b.shape[1] == 5 else b
                        for b in per_item]
        pairs = list(zip(items, per_item))
        for i in range(0, len(pairs), batch_size):
            yield from self._run_batch(pairs[i:i + batch_size], errors)

    __call__ = predict

    def __repr__(self):
        return (f'{type(self).__name__}(model_name={self.model_name!r}, input_size={self.input_size}, '
                f'device={self.device!r}, flip={self.flip}, backend={self.backend!r}, '
                + (f'choice={self.runner.describe()!r}, ' if self.backend == 'auto' else '')
                + (f'precision={self.precision!r}, ' if self.precision != 'fp32' else '')
                + f'geometry={self.geometry.name!r})')


def create_model(model_name, model_dir=None, device=None, pp_option=None, use_hpip=False, hpi_config=None, *,
                 flip=False, use_udp=None, batch_size=1, backend=None, geometry='paddlex', onnx_path=None,
                 threshold=None, precision='fp32', calib=None):
    """PaddleX-compatible constructor: ``create_model('PP-TinyPose_128x96').predict('img.jpg')``.

    A detector name (``PicoDet-S_pedestrian_320`` / ``_192``) gives a
    :class:`~kpt_plugin.inference.detector.DetectorPredictor` (PaddleX's object-detection module; ``threshold``,
    ``device``, ``model_dir``, ``batch_size``, ``use_hpip`` / ``hpi_config`` / ``backend`` (cpu) and ``precision``
    (fp32 or bf16) apply to it).

    Args:
        model_name (str): zoo name (``PP-TinyPose_128x96``, ``PP-TinyPose_256x192``, ``..._2021``); may be None
            when ``model_dir`` is a checkpoint that records its architecture.
        model_dir (str, optional): local weights in any form the converter reads (``.pth``, ``.pdparams``,
            Paddle inference / PaddleX model dir, OpenVINO IR, ncnn); default: the official weights (downloaded
            once, cached).
        device (str, optional): ``cpu``, ``cuda[:N]``, ``gpu[:N]`` (also PaddleX's ``gpu:0,1``: the first),
            ``npu[:N]``; default: best available.
        pp_option: PaddleX's ``PaddlePredictorOption``; only its ``cpu_threads`` has a meaning here (threads of
            the onnxruntime / openvino backends); Paddle run modes do not apply and are ignored.
        use_hpip (bool): high-performance mode: on cpu the fastest (runtime, fold plan) measured on this machine
            on the first batch and cached (:mod:`~.runtime.tuning`, ``kpt-plugin tune``); ONNX Runtime on cuda.
        hpi_config (dict, optional): as PaddleX's: ``{'backend': 'openvino' | 'onnxruntime',
            'backend_config': {'cpu_num_threads': N}}`` (implies ``use_hpip``).
        flip (bool): the flip test (fused into the batch).
        use_udp (bool, optional): PaddleX's ``use_udp`` (its UDP crop; default off as in PaddleX's model config).
        batch_size (int): default images per forward pass of :meth:`KeypointPredictor.predict`.
        backend (str, optional): ``'torch'``, ``'onnxruntime'``, ``'openvino'`` or ``'auto'`` (= the ``use_hpip``
            choice for the device); overrides the above.
        geometry (str): ``'paddlex'`` (PaddleX's crop and decode, default) or ``'ppdet'`` (PaddleDetection's
            evaluation geometry: UDP crop, scale / 200, as ``tools/test.py``).
        onnx_path (str, optional): run this exported file with the onnxruntime / openvino backend.
        threshold (float, optional): detectors only: keep boxes scored above it (default 0.5, PaddleX's).
        precision (str): ``'fp32'`` (default), ``'int8'`` (ONNX Runtime static quantization, calibrated on
            ``calib``; onnxruntime / openvino / auto backends) or ``'bf16'`` (OpenVINO, CPUs with AVX512-BF16 or
            AMX only); accuracy cost in docs/precision.md.
        calib (str, optional): int8 calibration images (a folder; see :mod:`~.quantize`); default: the small
            documented set under ``../shared/data``.

    Returns:
        KeypointPredictor | DetectorPredictor
    """
    from ..zoo import resolve_checkpoint, task_of
    hpi_backend, threads = parse_hpi_config(hpi_config)
    pp_threads = getattr(pp_option, 'cpu_threads', None)
    if threads is None and isinstance(pp_threads, int) and not isinstance(pp_threads, bool) and pp_threads > 0:
        threads = pp_threads
    if backend is None:
        backend = hpi_backend if (use_hpip or hpi_config is not None or precision != 'fp32') else 'torch'
    config, checkpoint = resolve_checkpoint(name=model_name, weights=model_dir)
    if task_of(model_name, config) == 'detection':
        from .detector import DetectorPredictor
        if backend == 'auto' and precision == 'fp32' and parse_device(device) != 'cpu':
            backend = 'torch'  # use_hpip off cpu: the detector's graph runtimes are cpu ones
        predictor = DetectorPredictor(config, checkpoint, model_name=model_name or osp.basename(os.fspath(model_dir)),
                                      device=device, threshold=0.5 if threshold is None else threshold,
                                      backend=backend, threads=threads, precision=precision)
        predictor.batch_size = _check_batch_size(batch_size)
        return predictor
    if threshold is not None:
        raise OptionError('threshold applies to detectors; a keypoint model takes boxes via predict(bboxes=..., '
                          'bbox_thr=...)')
    predictor = KeypointPredictor(config, checkpoint, model_name=model_name or osp.basename(os.fspath(model_dir)),
                                  device=device, flip=flip, backend=backend, onnx_path=onnx_path, threads=threads,
                                  geometry=geometry, use_udp=use_udp, precision=precision, calib=calib)
    predictor.batch_size = _check_batch_size(batch_size)
    return predictor


def _threads(threads):
    import torch
    return max(1, int(threads if threads is not None else torch.get_num_threads()))


def _check_batch_size(batch_size):
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise OptionError(f'batch_size must be a positive integer, got {batch_size!r}')
    return batch_size
