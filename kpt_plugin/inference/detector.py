"""``create_model('PicoDet-S_pedestrian_320')``: PaddleX's object-detection module on our PyTorch PicoDet.

preprocess (ppdet: bicubic stretch to S x S, ImageNet normalisation) -> network -> decode + ppdet's MultiClassNMS ->
boxes in image pixels, clipped to the image (as PaddleX) -> :class:`DetResult` (PaddleX's ``boxes: [{cls_id,
label, score, coordinate}]``). Batches of images run as one network call (all share the S x S input).
"""
import json
import logging
import os.path as osp
import random
import threading
import time
import warnings

import numpy as np
import torch

from weight_convert.io import atomic_write_bytes, strict_json

from ..errors import InputError, OptionError
from .device import parse_device
from .inputs import expand_inputs, load_image
from .nets import checked_state_dict

__all__ = ['DetectorPredictor', 'DetResult', 'PlainPicoDet', 'build_detector']

logger = logging.getLogger('kpt_plugin')


def build_detector(config, checkpoint, device='cpu'):
    """Build the detector of ``config`` and load ``checkpoint`` strictly (one clear error when it does not fit).

    A PicoDet of our parts (every config under ``configs/picodet/``) is built as :class:`PlainPicoDet`, without
    importing mmdet (~3 s of a fresh process); any other model through mmdet's registry.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if PlainPicoDet.fits(cfg.model):
        model = PlainPicoDet(cfg.model)
    else:
        from mmengine.registry import DefaultScope
        from mmdet.registry import MODELS
        # mmdet's scope for this build only: the process's current scope (MMPose's, a user's) stays current
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = MODELS.build(cfg.model)
    model.load_state_dict(checked_state_dict(checkpoint, model, config, kind='PicoDet'), strict=True)
    model.cfg = cfg
    return model.to(device).eval()


class PlainPicoDet(torch.nn.Module):
    """The ``backbone``, ``neck`` and ``bbox_head`` of a PicoDet config as plain modules: the mmdet ``PicoDet``'s
    tensors and network (its data preprocessor holds none; the predictor does ppdet's preprocessing itself)."""

    PARTS = dict(backbone='LCNet', neck='LCPAN', bbox_head='PicoHeadV2')

    @staticmethod
    def _type(spec):
        return str((spec or {}).get('type', '')).split('.')[-1]

    @classmethod
    def fits(cls, model_cfg):
        """Whether the model config is a PicoDet of our parts (with our data preprocessor or none)."""
        parts = all(cls._type(model_cfg.get(k)) == v for k, v in cls.PARTS.items())
        return (cls._type(model_cfg) == 'PicoDet' and parts
                and cls._type(model_cfg.get('data_preprocessor')) in ('', 'PPDetDataPreprocessor'))

    def __init__(self, model_cfg):
        super().__init__()
        from kpt_plugin.models.detection.lcnet import LCNet
        from kpt_plugin.models.detection.lcpan import LCPAN
        from kpt_plugin.models.detection.pico_head import PicoHeadV2
        classes = dict(LCNet=LCNet, LCPAN=LCPAN, PicoHeadV2=PicoHeadV2)
        for part in self.PARTS:
            kwargs = {k: v for k, v in model_cfg[part].items() if k != 'type'}
            if part == 'bbox_head':  # as mmdet's SingleStageDetector passes them
                kwargs.update(train_cfg=model_cfg.get('train_cfg'), test_cfg=model_cfg.get('test_cfg'))
            setattr(self, part, classes[self._type(model_cfg[part])](**kwargs))


class _FastNet(torch.nn.Module):
    """The detector's network + box decoding, traced and frozen (TorchScript) on CPU once an input shape is frequent.

    Bitwise equal to eager (``freeze(optimize_numerics=False)``: no conv-BN folding); it only drops the Python
    dispatch of ~300 small ops, 15-25 % of the network time measured on 2 shared cores. Not done on purpose: BN
    folding and channels_last (another 20-30 % there) move boxes by ~5e-4 px, and that moves 256x192 keypoints beyond
    the PaddleX parity tolerance (tests/test_inference/test_pipeline.py). Tracing costs ~2 s, about 30 eager calls,
    so it waits for :attr:`TRACE_AFTER` calls of a shape (the rent-or-buy rule of
    :class:`~kpt_plugin.inference.runtime.torch.TorchBackend`; a detector sees one shape per batch size).
    """

    TRACE_AFTER = 32

    def __init__(self, model, device):
        super().__init__()
        self.backbone, self.neck, self.head = model.backbone, model.neck, model.bbox_head
        self.jit = str(device).startswith('cpu')
        self._traced = {}  # shape -> calls so far (int), then the traced module

    def forward(self, x):
        head = self.head
        return head.decode(*head(self.neck(self.backbone(x))))

    def _module(self, x):
        if not self.jit:
            return self.forward
        key = tuple(x.shape)
        seen = self._traced.get(key, 0)
        if not isinstance(seen, int):
            return seen
        if seen + 1 < self.TRACE_AFTER:
            self._traced[key] = seen + 1
            return self.forward
        from .onnx_export import EXPORT_LOCK
        with EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')  # TracerWarnings on the shape arithmetic, constant for a traced shape
            traced = torch.jit.freeze(torch.jit.trace(self, x, check_trace=False).eval(), optimize_numerics=False)
        self._traced[key] = traced
        return traced

    def run(self, x):
        """Boxes and scores of a batch (the traced module once the shape is frequent, else eager)."""
        return self._module(x)(x)


class _OpenVinoNet:
    """The detector network on OpenVINO (CPU, f32 precision hint): our graph (:class:`_FastNet`) converted once per
    batch size and cached as an fp32 IR in ``zoo.cache_dir()/openvino`` (keyed by the checkpoint's content);
    ``precision='bf16'`` compiles it with the bf16 hint."""

    def __init__(self, net, checkpoint, input_size, threads, precision='fp32'):
        import openvino as ov
        from weight_convert.io import sha256sum
        from .._compat import openvino_core
        self.ov, self.core, self.net, self.input_size = ov, openvino_core(), net, input_size
        self.config = {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16' else 'f32',
                       'PERFORMANCE_HINT': 'LATENCY',
                       'INFERENCE_NUM_THREADS': max(1, int(threads or torch.get_num_threads()))}
        self.key = f'{sha256sum(checkpoint)[:16]}-{input_size[0]}-ov{ov.__version__.split("-")[0]}'
        self.requests = {}

    def _ir(self, n):
        """The cached IR of batch ``n`` (written on first use: .bin, then .xml, each by an atomic rename)."""
        import os
        import shutil
        import tempfile

        from ..zoo.hub import cache_dir
        path = osp.join(cache_dir(), 'openvino', f'picodet-{self.key}-b{n}.xml')
        if osp.isfile(path):
            return path
        from .onnx_export import EXPORT_LOCK
        shape = [n, 3, *self.input_size]
        with EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')  # TracerWarnings, as for _FastNet
            model = self.ov.convert_model(self.net, example_input=torch.zeros(shape), input=shape)
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=osp.dirname(path))
        try:
            self.ov.save_model(model, osp.join(tmp, 'm.xml'), compress_to_fp16=False)  # fp32, as the torch weights
            os.replace(osp.join(tmp, 'm.bin'), path[:-4] + '.bin')
            os.replace(osp.join(tmp, 'm.xml'), path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def run(self, x):
        n = x.shape[0]
        if n not in self.requests:
            model = self.core.read_model(self._ir(n))
            self.requests[n] = self.core.compile_model(model, 'CPU', self.config).create_infer_request()
        req = self.requests[n]
        req.infer({0: x.numpy()})
        return (torch.from_numpy(req.get_output_tensor(0).data.copy()),
                torch.from_numpy(req.get_output_tensor(1).data.copy()))


class _OnnxRuntimeNet:
    """The detector network on ONNX Runtime (CPU): our graph (:class:`_FastNet`) exported once per batch size and
    cached in ``zoo.cache_dir()/onnx`` (keyed by the checkpoint's content); boxes within 1e-3 px of torch."""

    def __init__(self, net, checkpoint, input_size, threads):
        import onnxruntime as ort
        from weight_convert.io import sha256sum
        from .onnx_export import OPSET
        self.ort, self.net, self.input_size, self.opset = ort, net, input_size, OPSET
        self.threads = max(1, int(threads or torch.get_num_threads()))
        self.key = f'{sha256sum(checkpoint)[:16]}-{input_size[0]}-op{OPSET}'
        self.sessions = {}

    def _onnx(self, n):
        from weight_convert.io import atomic_output
        from ..zoo.hub import cache_dir, cached_file
        from .onnx_export import EXPORT_LOCK

        def build(out):
            with atomic_output(out) as tmp, EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter('ignore')  # TracerWarnings, as for _FastNet
                torch.onnx.export(self.net, torch.zeros(n, 3, *self.input_size), tmp, dynamo=False,
                                  opset_version=self.opset, input_names=['image'], output_names=['boxes', 'scores'])
        return cached_file(osp.join(cache_dir(), 'onnx', f'picodet-{self.key}-b{n}.onnx'), build,
                           'detector ONNX export')

    def run(self, x):
        n = x.shape[0]
        if n not in self.sessions:
            from .runtime.onnxruntime import cpu_session_options
            so = cpu_session_options(self.ort, self.threads)
            self.sessions[n] = self.ort.InferenceSession(self._onnx(n), so, providers=['CPUExecutionProvider'])
        boxes, scores = self.sessions[n].run(None, {'image': np.ascontiguousarray(x.numpy())})
        return torch.from_numpy(boxes), torch.from_numpy(scores)


#: the detector's candidates for ``use_auto`` (torch is ~2.4x slower than either: not tried)
DET_CANDIDATES = (('openvino', 'ours'), ('onnxruntime', 'ours'))
#: fp32 parity of the detector's tuned choice: max |boxes (network-input px) or scores - torch eager|
DET_PARITY_ATOL = 1e-3


class _AutoNet:
    """The detector network on the runtime measured fastest on this machine (``AutoBackend``; torch answers while
    it is tuned)."""

    def __init__(self, net, checkpoint, input_size, threads, arch, precision='fp32'):
        import copy
        from .runtime.tuning import AutoBackend
        threads = max(1, int(threads or torch.get_num_threads()))
        export_net, lock = [], threading.Lock()

        def factory(backend, plan):
            with lock:
                if not export_net:
                    # the tuning thread exports a copy while the stand-in runs ``net``; made on the first tuning, so
                    # a short run never pays for it (~0.05 s)
                    export_net.append(copy.deepcopy(net))
            inner = (_OpenVinoNet(export_net[0], checkpoint, input_size, threads, precision) if backend == 'openvino'
                     else _OnnxRuntimeNet(export_net[0], checkpoint, input_size, threads))
            return lambda batch: tuple(t.numpy() for t in inner.run(torch.from_numpy(batch)))

        def eager(batch):
            with torch.inference_mode():
                return tuple(t.numpy() for t in net.forward(torch.from_numpy(batch)))

        # bf16: AutoBackend's candidates for it (OpenVINO's hint)
        self.auto = AutoBackend(factory, eager, arch=arch, input_size=input_size, threads=threads,
                                precision=precision, candidates=DET_CANDIDATES if precision == 'fp32' else None,
                                fallback=eager, atol=DET_PARITY_ATOL)

    def run(self, x):
        boxes, scores = self.auto(np.ascontiguousarray(x.numpy()))
        return torch.from_numpy(boxes), torch.from_numpy(scores)


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
        # strict_json \u-escapes a file name that is not UTF-8, so the file stays valid JSON
        text = strict_json(self.json['res'], indent) if not ensure_ascii else json.dumps(
            self.json['res'], indent=indent, ensure_ascii=True, allow_nan=False)
        return atomic_write_bytes(target, text.encode('utf-8'))

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

    Args:
        config, checkpoint: the detector's config and weights.
        model_name (str, optional): the name results and ``repr`` show.
        device (str, optional): as ``create_model``.
        threshold (float): PaddleX's score threshold (default 0.5).
        backend (str): ``'torch'`` (default), ``'openvino'``, ``'onnxruntime'`` or ``'auto'`` (the graph runtimes
            on cpu only; see :meth:`use_openvino`, :meth:`use_onnxruntime`, :meth:`use_auto`).
        threads (int, optional): threads of a graph runtime (default: torch's).
        precision (str): ``'fp32'`` (default) or ``'bf16'`` (OpenVINO on CPUs with AVX512-BF16 / AMX); not
            ``'int8'``: :data:`INT8_REFUSED` (measured, docs/precision.md).

    Attributes:
        model_name, config, checkpoint, device, input_size (S, S), threshold (PaddleX's default 0.5), backend,
        precision, labels (class names), model (:class:`PlainPicoDet`, or mmdet's detector for other configs),
        timings.
    """

    def __init__(self, config, checkpoint, model_name=None, device=None, threshold=0.5, backend='torch',
                 threads=None, precision='fp32'):
        from .quantize import check_precision
        self.device = parse_device(device)
        if backend not in _BACKENDS:
            raise OptionError(f'backend must be one of {", ".join(_BACKENDS)} for a detector, got {backend!r}')
        if precision == 'int8':
            raise OptionError(INT8_REFUSED)
        self.precision = check_precision(precision, backend, self.device, instead=_BF16_INSTEAD)
        self.config, self.checkpoint, self.model_name = config, checkpoint, model_name
        self.threshold = _check_threshold(threshold)
        self.model = build_detector(config, checkpoint, self.device)
        self._fast = self._net = _FastNet(self.model, self.device)
        size = self.model.cfg.get('input_size', 320)
        self.input_size = (int(size), int(size))
        self.labels = tuple(self.model.cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {}).get(
            'classes', ('person', )))
        self.timings = dict(load=0., preprocess=0., model=0., postprocess=0., images=0, instances=0)
        self.backend = 'torch'
        if backend != 'torch':
            dict(openvino=self.use_openvino, onnxruntime=self.use_onnxruntime, auto=self.use_auto)[backend](threads)

    @torch.inference_mode()
    def detect(self, images, min_score=None):
        """Detections of BGR images: per image a float32 (K, 6) ``[cls, score, x1, y1, x2, y2]`` array, all scores
        > the NMS score threshold (0.025), image pixels, clipped to the image, in ppdet's NMS order.

        Args:
            images (list[ndarray]): BGR images.
            min_score (float, optional): keep only scores > this (when above the NMS threshold). The NMS then
                runs on those candidates alone, with the same result for them: greedy NMS decides a box from the
                boxes ranked before it, and ``keep_top_k`` keeps the best scores. Much cheaper (the NMS is
                quadratic in its candidates: ~500 above 0.025, a handful above 0.5).
        """
        from kpt_plugin.models.detection.nms import multiclass_nms
        from kpt_plugin.models.detection.preprocess import preprocess_image
        if not images:
            return []
        t0 = time.perf_counter()
        inputs, factors = zip(*(preprocess_image(img, self.input_size[0]) for img in images))
        x = torch.from_numpy(np.concatenate(inputs)).to(self.device)
        t1 = time.perf_counter()
        head = self.model.bbox_head
        boxes, scores = self.network(x)
        t2 = time.perf_counter()
        nms = dict(head.test_cfg.get('nms', {}))
        if min_score is not None and min_score > nms.get('score_threshold', 0.05):
            nms['score_threshold'] = float(min_score)
        out = []
        for img, b, s, (fy, fx) in zip(images, boxes, scores, factors):
            # head.post_process with our NMS settings: rescale to image pixels, then ppdet's MultiClassNMS
            b = b.float() / b.new_tensor((float(fx), float(fy)), dtype=torch.float32).repeat(2)
            dets = multiclass_nms(b, s.float(), **nms)[0].cpu().numpy().astype(np.float32)
            h, w = img.shape[:2]
            # PaddleX's detector clips to the image; ppdet's post_process does not
            np.clip(dets[:, 2::2], 0, w, out=dets[:, 2::2])
            np.clip(dets[:, 3::2], 0, h, out=dets[:, 3::2])
            out.append(dets)
        self.timings['preprocess'] += t1 - t0
        self.timings['model'] += t2 - t1
        self.timings['postprocess'] += time.perf_counter() - t2
        return out

    def network(self, x):
        """The network and its box decoding (no NMS): a normalised (N, 3, S, S) float32 tensor -> boxes (N, A, 4)
        x1y1x2y2 in network-input pixels and scores (N, C, A). The one step another runtime replaces (the benchmark's
        OpenVINO peer runs the official IR here, with the same pre- and postprocessing)."""
        return self._net.run(x)

    def use_openvino(self, threads=None):
        """Run the network on OpenVINO from now on (CPU; what ``create_pipeline(use_hpip=True)`` does): our graph,
        f32 precision hint; boxes move by < 1e-3 px and scores by < 1e-5 against torch. The first call of each batch
        size converts and caches the graph (seconds, once per checkpoint)."""
        self._net = _OpenVinoNet(self._fast, self.checkpoint, self.input_size, threads,
                                 self._graph_precision('openvino'))
        self.backend = 'openvino'
        return self

    def use_onnxruntime(self, threads=None):
        """Run the network on ONNX Runtime from now on (CPU): our graph, exported and cached per batch size."""
        self._graph_precision('onnxruntime')
        self._net = _OnnxRuntimeNet(self._fast, self.checkpoint, self.input_size, threads)
        self.backend = 'onnxruntime'
        return self

    def use_auto(self, threads=None):
        """Run the network on whichever of OpenVINO and ONNX Runtime is measured fastest on this machine (what
        ``create_pipeline(use_hpip=True)`` does on cpu): tuned once per machine, size and threads in the background
        while torch answers, cached with the keypoint model's choices (``kpt-plugin tune --model
        PicoDet-S_pedestrian_320`` does it ahead of time). Measured on an AVX2-only EPYC at 320, 2 threads, batch
        1, in one process: OpenVINO 10.6 ms, ONNX Runtime 11.8 ms (the official IR on OpenVINO: 10.3 ms); which one
        wins differs between CPUs."""
        precision = self._graph_precision('auto')
        arch = osp.splitext(osp.basename(str(self.config)))[0]
        self._net = _AutoNet(self._fast, self.checkpoint, self.input_size, threads, arch, precision)
        self.backend = 'auto'
        return self

    def _graph_precision(self, backend):
        """The precision for a switch to graph runtime ``backend`` (checked: cpu only; bf16 on OpenVINO)."""
        from .quantize import check_precision
        if self.device != 'cpu':
            raise OptionError(f'the detector runs on {backend} on cpu only here, not {self.device}')
        return check_precision(self.precision, backend, self.device, instead=_BF16_INSTEAD)

    def wait(self):
        """Finish backend auto's tuning asked for or deferred so far (see ``KeypointPredictor.wait``)."""
        if self.tuning is not None:
            self.tuning.wait()

    @property
    def tuning(self):
        """The :class:`~kpt_plugin.inference.runtime.tuning.AutoBackend` after :meth:`use_auto`, else None."""
        return getattr(self._net, 'auto', None)

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
            dets = iter(self.detect(good, min_score=thr))
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
                f'device={self.device!r}, backend={self.backend!r}, '
                + (f'precision={self.precision!r}, ' if self.precision != 'fp32' else '')
                + f'threshold={self.threshold})')


#: why the detector has no int8 (measured by tools/dev/detector_precision.py, docs/precision.md)
INT8_REFUSED = ("precision='int8' is not offered for PicoDet: post-training int8 of the official weights finds none "
                'of the 39 persons of the fixture images (per-tensor activation ranges span 100x between channels '
                'behind hard-swish, which no exact rescaling can even out); run the detector at fp32 or bf16 (a '
                "pipeline with precision='int8' quantises its keypoint model only)")
#: the way out of a bf16 refusal on a CPU without bf16 (int8 is not one for the detector)
_BF16_INSTEAD = 'run the detector at fp32'
#: the detector's backends (the graph runtimes on cpu)
_BACKENDS = ('torch', 'openvino', 'onnxruntime', 'auto')


def _check_threshold(thr):
    if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0 <= thr <= 1:
        raise OptionError(f'threshold must be a number in [0, 1], got {thr!r}')
    return float(thr)
