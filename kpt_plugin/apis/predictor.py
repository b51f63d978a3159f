"""``kpt_plugin.create_model``: PaddleX's keypoint-module interface on our PyTorch / ONNX Runtime / OpenVINO model."""
import logging
import os
import os.path as osp
import time

import numpy as np
import torch

from .device import parse_device
from .inputs import InputError, boxes_for_items, expand_inputs, load_image
from .models import FlipFusedNet, HeatmapNet, build_pose_model, fold_for_inference
from .postprocess import decode_heatmaps
from .preprocess import box_center_scale, crop, crops_to_tensor, whole_image_center_scale
from .result import KptResult

__all__ = ['create_model', 'KeypointPredictor', 'TorchBackend', 'OrtBackend', 'OpenVinoBackend', 'BACKENDS']

logger = logging.getLogger('kpt_plugin')
BACKENDS = ('torch', 'onnxruntime', 'openvino')


class TorchBackend:
    """PyTorch: BN, channel shuffles, fuse-layer sums and the stem folded into the convs, channels_last, flip fused into
    the batch, ``inference_mode``. With ``jit`` (default on CPU) the net is traced and frozen (TorchScript)
    the second time an input shape comes (about 1 s once per shape; then 1.1-1.3x faster than eager)."""

    name = 'torch'

    def __init__(self, pose_model, device='cpu', flip=False, fold_bn=True, channels_last=True, jit=True):
        net = HeatmapNet(pose_model).eval()
        if fold_bn:
            fold_for_inference(net, runtime='torch')
        self.net = (FlipFusedNet(net) if flip else net).to(device).eval()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = self.net.to(memory_format=self.memory_format)
        self.device = device
        self.jit = jit and str(device).startswith('cpu')  # measured on CPU only
        self._traced = {}

    def _module(self, x):
        # traced on the SECOND batch of a shape: tracing + freezing costs ~1 s, a one-off call runs eager
        if not self.jit:
            return self.net
        key = tuple(x.shape)
        seen = self._traced.get(key)
        if seen is None:
            self._traced[key] = False
            return self.net
        if seen is False:
            import warnings
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter('ignore')
                seen = torch.jit.freeze(torch.jit.trace(self.net, x, check_trace=False).eval())
            self._traced[key] = seen
        return seen

    def __call__(self, batch):
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=self.memory_format)
        net = self._module(x)
        with torch.inference_mode():
            return net(x).float().contiguous().cpu().numpy()


class _GraphBackend:
    """Shared by the exported-graph backends: fixed-batch graphs per batch bucket, or one user file.

    Without ``onnx_path`` the model is exported once per batch size in (1, 2, 4, 8, 16) with a FIXED batch
    (the runtimes then fold all shape arithmetic away: about 2x faster on CPU than a dynamic-batch graph) and
    cached; a batch of n crops runs as the largest sizes that sum to n (11 = 8 + 2 + 1, no padding).
    With ``onnx_path`` that file is used: dynamic batch as is, a fixed batch B in chunks of B (last one padded).
    """

    name = runtime = None
    BUCKETS = (16, 8, 4, 2, 1)

    def __init__(self, onnx_path, threads, pose_model, checkpoint, input_size, flip):
        self.threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
        self._export_args = (pose_model, checkpoint, input_size, flip)
        self.sessions = {}
        self.onnx_path = onnx_path
        self.user_file = onnx_path is not None
        if self.user_file:
            onnx_path = os.fspath(onnx_path)
            if not osp.isfile(onnx_path):
                raise FileNotFoundError(f'{onnx_path}: no such model file; write one with `kpt-plugin export` or '
                                        'leave onnx_path out (the graph is then exported for you)')
            try:
                self._check_file(onnx_path)
                sess = self._load(onnx_path)
            except Exception as e:  # each runtime raises its own types for unreadable files
                # OpenVINO prefixes its reason with source locations; keep the reason
                lines = [ln for ln in str(e).strip().splitlines()
                         if ln.strip() and not ln.startswith(('Exception from', 'Check '))]
                first = (lines or [type(e).__name__])[0][:200]
                raise ValueError(f'{onnx_path}: {self.name} cannot load this model ({first}); pass an ONNX file '
                                 'from `kpt-plugin export` (or an OpenVINO IR .xml for openvino)') from None
            names, dim = self._inputs(sess)
            if len(names) != 1:
                raise ValueError(f'{onnx_path}: expected a heatmap graph with one input "image" (export it without '
                                 '--with-decode)')
            self.fixed = dim if isinstance(dim, int) else None
            self.sessions[self.fixed] = sess

    def _load(self, path):
        raise NotImplementedError

    @staticmethod
    def _check_file(path):
        """Raise when ``path`` is not a model this runtime should be given."""

    @staticmethod
    def _inputs(sess):
        """(input names, batch dimension: int when fixed)."""
        raise NotImplementedError

    @staticmethod
    def _run(sess, x):
        raise NotImplementedError

    def _bucket_session(self, size):
        if size not in self.sessions:
            from .onnx_export import cached_onnx
            pose_model, checkpoint, input_size, flip = self._export_args
            path = cached_onnx(pose_model, checkpoint, input_size, flip=flip, batch_size=size, runtime=self.runtime)
            self.sessions[size] = self._load(path)
            self.onnx_path = path
        return self.sessions[size]

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        n = batch.shape[0]
        if self.user_file:
            if self.fixed is None:
                return self._run(self.sessions[None], batch)
            outs = []
            for i in range(0, n, self.fixed):
                part = batch[i:i + self.fixed]
                k = part.shape[0]
                if k < self.fixed:
                    part = np.concatenate([part, np.zeros((self.fixed - k, ) + part.shape[1:], np.float32)])
                outs.append(self._run(self.sessions[self.fixed], part)[:k])
            return np.concatenate(outs)
        outs, i = [], 0
        while i < n:
            size = next(b for b in self.BUCKETS if b <= n - i)
            outs.append(self._run(self._bucket_session(size), batch[i:i + size]))
            i += size
        return outs[0] if len(outs) == 1 else np.concatenate(outs)


class OrtBackend(_GraphBackend):
    """ONNX Runtime on our exported graph (CPU; CUDA when ``device`` is a GPU and the provider exists)."""

    name = runtime = 'onnxruntime'

    def __init__(self, onnx_path=None, device='cpu', threads=None, pose_model=None, checkpoint=None,
                 input_size=None, flip=False):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeError('the onnxruntime backend needs onnxruntime: pip install onnxruntime') from None
        self._ort = ort
        self.providers = ['CPUExecutionProvider']
        if device.startswith('cuda'):
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise RuntimeError(f'{device} requested with the onnxruntime backend but this onnxruntime has no '
                                   'CUDAExecutionProvider; install onnxruntime-gpu or use --backend torch')
            idx = int(device.split(':')[1]) if ':' in device else 0
            self.providers = [('CUDAExecutionProvider', dict(device_id=idx)), 'CPUExecutionProvider']
        elif device != 'cpu':
            raise RuntimeError(f'the onnxruntime backend runs on cpu or cuda, not {device}')
        super().__init__(onnx_path, threads, pose_model, checkpoint, input_size, flip)

    def _load(self, path):
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        return ort.InferenceSession(path, so, providers=self.providers)

    @staticmethod
    def _inputs(sess):
        return [i.name for i in sess.get_inputs()], sess.get_inputs()[0].shape[0]

    @staticmethod
    def _run(sess, x):
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]


class OpenVinoBackend(_GraphBackend):
    """OpenVINO (CPU) on our exported graph, with the fold plan tuned for it (``FOLD_PLANS['openvino']``).

    Compiled with the f32 precision hint: OpenVINO's default on CPUs with AVX512-BF16/AMX runs bf16, which moves
    heatmaps by up to 8e-2 (not the fp32 model). ``onnx_path`` may also be an OpenVINO IR ``.xml``.
    """

    name = runtime = 'openvino'

    def __init__(self, onnx_path=None, device='cpu', threads=None, pose_model=None, checkpoint=None,
                 input_size=None, flip=False):
        try:
            import openvino
        except ImportError:
            raise RuntimeError('the openvino backend needs openvino: pip install openvino') from None
        if device != 'cpu':
            raise RuntimeError(f'the openvino backend runs on cpu, not {device}; use --backend onnxruntime '
                               '(cuda) or torch')
        self._core = openvino.Core()
        super().__init__(onnx_path, threads, pose_model, checkpoint, input_size, flip)

    @staticmethod
    def _check_file(path):
        # OpenVINO would try every frontend on a bad file (TensorFlow's logs parse errors to stderr)
        if not path.lower().endswith(('.onnx', '.xml')):
            raise ValueError('expected an .onnx file or an OpenVINO IR .xml')
        if path.lower().endswith('.onnx'):
            import onnx
            onnx.load(path, load_external_data=False)
        else:
            with open(path, 'rb') as f:
                if b'<net' not in f.read(4096):
                    raise ValueError('not an OpenVINO IR: no <net> element')

    def _load(self, path):
        config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
                  'INFERENCE_NUM_THREADS': self.threads}
        compiled = self._core.compile_model(self._core.read_model(path), 'CPU', config)
        return compiled.create_infer_request()

    @staticmethod
    def _inputs(req):
        inputs = req.model_inputs
        dim = inputs[0].get_partial_shape()[0]
        return [i.any_name for i in inputs], dim.get_length() if dim.is_static else None

    @staticmethod
    def _run(req, x):
        req.infer({0: x})
        return req.get_output_tensor(0).data.copy()


class KeypointPredictor:
    """PP-TinyPose top-down keypoint predictor (what :func:`create_model` returns).

    Attributes:
        model_name, config, checkpoint, device, flip, backend (one of :data:`BACKENDS`), input_size (w, h),
        pose_model (the MMPose ``TopdownPoseEstimator``), timings (seconds per stage, accumulated:
        ``load``/``preprocess``/``model``/``postprocess``; reset with :meth:`reset_timings`).
    """

    def __init__(self, config, checkpoint, model_name=None, device=None, flip=False, backend='torch',
                 onnx_path=None, threads=None):
        if backend not in BACKENDS + ('auto', ):
            raise ValueError(f'unknown backend {backend!r}; choose one of {", ".join(BACKENDS)}')
        self.device = parse_device(device)
        if backend == 'auto':
            backend = auto_hpip_backend(self.device)
        self.config, self.checkpoint, self.model_name = config, checkpoint, model_name
        self.flip, self.backend = bool(flip), backend
        self.pose_model = build_pose_model(config, checkpoint, 'cpu')
        self.input_size = tuple(self.pose_model.cfg.codec['input_size'])
        if backend == 'torch':
            self.runner = TorchBackend(self.pose_model, self.device, flip=self.flip)
        else:
            cls = OrtBackend if backend == 'onnxruntime' else OpenVinoBackend
            if onnx_path is not None:
                self.runner = cls(onnx_path, self.device, threads=threads)
            else:
                self.runner = cls(device=self.device, threads=threads, pose_model=self.pose_model,
                                  checkpoint=checkpoint, input_size=self.input_size, flip=self.flip)
        self.reset_timings()

    def reset_timings(self):
        """Zero the per-stage timers."""
        self.timings = dict(load=0., preprocess=0., model=0., postprocess=0., images=0, instances=0)

    # ------------------------------------------------------------------ core
    def heatmaps(self, batch):
        """Run the network (with flip fusion when enabled) on a normalised (N, 3, H, W) float32 batch."""
        return self.runner(batch)

    def _prepare(self, item, boxes):
        t0 = time.perf_counter()
        img = load_image(item)
        t1 = time.perf_counter()
        if isinstance(boxes, Exception):
            raise boxes
        h, w = img.shape[:2]
        if boxes is None:
            cs = [whole_image_center_scale(w, h, self.input_size)]
        else:
            cs = [box_center_scale(b[:4], self.input_size) for b in boxes]
        crops = [crop(img, c, s, self.input_size) for c, s in cs]
        t2 = time.perf_counter()
        self.timings['load'] += t1 - t0
        self.timings['preprocess'] += t2 - t1
        return img, cs, crops

    def _run_batch(self, chunk, errors):
        prepared = []
        for item, boxes in chunk:
            try:
                prepared.append((item, boxes) + self._prepare(item, boxes))
            except InputError as e:
                if errors == 'raise':
                    raise
                logger.warning('%s', e)
                prepared.append((item, boxes, None, None, e))
        crops = [c for p in prepared if p[2] is not None for c in p[4]]
        if crops:
            t0 = time.perf_counter()
            batch = crops_to_tensor(crops)
            t_pre = time.perf_counter()
            self.timings['preprocess'] += t_pre - t0
            t0 = t_pre
            hms = self.heatmaps(batch)
            t1 = time.perf_counter()
            centers = np.stack([c for p in prepared if p[2] is not None for c, _ in p[3]])
            scales = np.stack([s for p in prepared if p[2] is not None for _, s in p[3]])
            preds, maxvals = decode_heatmaps(hms, centers, scales)
            # [x, y, score] rows and mean scores for every instance at once; per instance only .tolist()
            kps = np.concatenate([preds, maxvals], axis=2).astype(np.float64).tolist()
            kpt_scores = np.mean(maxvals, axis=(1, 2), dtype=np.float32).tolist()
            t2 = time.perf_counter()
            self.timings['model'] += t1 - t0
            self.timings['postprocess'] += t2 - t1
        results, k = [], 0
        t0 = time.perf_counter()
        for item, boxes, img, cs, crops_or_err in prepared:
            if img is None:
                results.append(KptResult(dict(input_path=item.input_path, page_index=None, kpts=[],
                                              error=str(crops_or_err)), None, item.name))
                continue
            kpts = []
            for j in range(len(cs)):
                entry = dict(keypoints=kps[k], kpt_score=kpt_scores[k])
                if boxes is not None:
                    entry['bbox'] = boxes[j, :4].tolist()
                    if boxes.shape[1] == 5:
                        entry['det_score'] = float(boxes[j, 4])
                kpts.append(entry)
                k += 1
            results.append(KptResult(dict(input_path=item.input_path, page_index=None, kpts=kpts), img, item.name))
            self.timings['images'] += 1
            self.timings['instances'] += len(cs)
        self.timings['postprocess'] += time.perf_counter() - t0
        return results

    def predict(self, input, batch_size=1, bboxes=None, errors='yield'):
        """Predict keypoints; yields one :class:`KptResult` per image, in input order.

        Args:
            input: an H x W x 3 BGR uint8 array, an image path, an http(s) URL, a directory (its images, sorted
                by name) or a list mixing these.
            batch_size (int): images per forward pass (all persons of those images run together).
            bboxes: person boxes: ``[[x1, y1, x2, y2, (score)], ...]`` for a single image, a list of such lists
                (one per image), a ``{file name: boxes}`` mapping, or the path of a COCO detection json.
                Without boxes the whole image is one person.
            errors (str): ``'yield'`` (default): an input that cannot be used yields a result with
                ``error`` set and empty ``kpts`` (logged as a warning) and the others continue;
                ``'raise'``: raise its :class:`~kpt_plugin.apis.inputs.InputError`.

        Yields:
            KptResult: one per image.
        """
        if errors not in ('yield', 'raise'):
            raise ValueError(f"errors must be 'yield' or 'raise', got {errors!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
        items = expand_inputs(input)
        per_item = boxes_for_items(items, bboxes)
        pairs = list(zip(items, per_item))
        for i in range(0, len(pairs), batch_size):
            yield from self._run_batch(pairs[i:i + batch_size], errors)

    __call__ = predict

    def __repr__(self):
        return (f'{type(self).__name__}(model_name={self.model_name!r}, input_size={self.input_size}, '
                f'device={self.device!r}, flip={self.flip}, backend={self.backend!r})')


def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def auto_hpip_backend(device):
    """The high-performance backend for a parsed device (PaddleX's hpip picks one per device the same way).

    cpu: OpenVINO when installed (fastest measured here in every cell, see docs/inference.md), else ONNX
    Runtime; cuda: ONNX Runtime (needs onnxruntime-gpu). Raises RuntimeError when none fits.
    """
    if device == 'cpu':
        for name in ('openvino', 'onnxruntime'):
            if _importable(name):
                return name
        raise RuntimeError("use_hpip on cpu needs openvino or onnxruntime: pip install openvino (or "
                           "onnxruntime), or use_hpip=False")
    if device.startswith('cuda'):
        if not _importable('onnxruntime'):
            raise RuntimeError(f'use_hpip on {device} needs onnxruntime-gpu: pip install onnxruntime-gpu, or '
                               'use_hpip=False')
        return 'onnxruntime'
    raise RuntimeError(f'use_hpip has no high-performance backend for {device}; use use_hpip=False (torch)')


#: PaddleX ``hpi_config`` backends that kpt_plugin does not have
_PADDLEX_ONLY_BACKENDS = ('paddle', 'tensorrt', 'om', 'paddle_infer')


def _parse_hpi_config(hpi_config):
    """PaddleX's ``hpi_config`` -> (backend or 'auto', cpu threads or None)."""
    if hpi_config is None:
        return 'auto', None
    if not isinstance(hpi_config, dict):
        raise TypeError(f'hpi_config must be a dict, got {type(hpi_config).__name__}')
    unknown = set(hpi_config) - {'backend', 'backend_config'}
    if unknown:
        raise ValueError(f'hpi_config: unsupported keys {", ".join(sorted(unknown))}; kpt_plugin reads '
                         '"backend" and "backend_config" ({"cpu_num_threads": N})')
    backend = hpi_config.get('backend') or 'auto'
    if backend in _PADDLEX_ONLY_BACKENDS:
        raise ValueError(f'hpi_config backend {backend!r} is a Paddle runtime; kpt_plugin runs openvino or '
                         'onnxruntime (or leave "backend" out to pick automatically)')
    if backend not in ('auto', 'openvino', 'onnxruntime'):
        raise ValueError(f'hpi_config: unknown backend {backend!r}; choose openvino or onnxruntime')
    cfg = hpi_config.get('backend_config') or {}
    if not isinstance(cfg, dict) or set(cfg) - {'cpu_num_threads'}:
        raise ValueError(f'hpi_config backend_config: only {{"cpu_num_threads": N}} is supported, got {cfg!r}')
    threads = cfg.get('cpu_num_threads')
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f'hpi_config backend_config cpu_num_threads must be a positive integer, got {threads!r}')
    return backend, threads


def create_model(model_name, model_dir=None, device=None, flip=False, use_hpip=False, hpi_config=None,
                 backend=None, **kwargs):
    """PaddleX-compatible constructor: ``create_model('PP-TinyPose_128x96').predict('img.jpg')``.

    Args:
        model_name (str): zoo name (``PP-TinyPose_128x96``, ``PP-TinyPose_256x192``, ``..._2021``); may be None
            when ``model_dir`` is a checkpoint that records its architecture.
        model_dir (str, optional): local weights in any form the converter reads (``.pth``, ``.pdparams``,
            Paddle inference dir, OpenVINO IR, ncnn); default: the official weights (downloaded once, cached).
        device (str, optional): ``cpu``, ``cuda[:N]``, ``gpu[:N]``, ``npu[:N]``; default: best available.
        flip (bool): ppdet's flip test (fused into the batch).
        use_hpip (bool): high-performance mode: our folded graph on OpenVINO (cpu; ONNX Runtime when OpenVINO is
            not installed) or ONNX Runtime (cuda), see :func:`auto_hpip_backend`.
        hpi_config (dict, optional): as PaddleX's: ``{'backend': 'openvino' | 'onnxruntime',
            'backend_config': {'cpu_num_threads': N}}`` (implies ``use_hpip``).
        backend (str, optional): ``'torch'``, ``'onnxruntime'``, ``'openvino'`` or ``'auto'`` (= the ``use_hpip``
            choice for the device); overrides the above.
        **kwargs: ``onnx_path`` (run this exported file with the onnxruntime / openvino backend).

    Returns:
        KeypointPredictor
    """
    from kpt_plugin.zoo import resolve_checkpoint
    unknown = set(kwargs) - {'onnx_path'}
    if unknown:
        raise TypeError(f'create_model got unexpected arguments: {", ".join(sorted(unknown))}')
    hpi_backend, threads = _parse_hpi_config(hpi_config)
    if backend is None:
        backend = hpi_backend if (use_hpip or hpi_config is not None) else 'torch'
    config, checkpoint = resolve_checkpoint(name=model_name, weights=model_dir)
    return KeypointPredictor(config, checkpoint, model_name=model_name or osp.basename(os.fspath(model_dir)),
                             device=device, flip=flip, backend=backend, onnx_path=kwargs.get('onnx_path'),
                             threads=threads)
