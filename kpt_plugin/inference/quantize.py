"""Reduced precision, opt-in: int8 (ONNX Runtime static quantization of our fp32 graph) and bf16 (OpenVINO's hint).

int8: :func:`quantize_onnx` runs ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights,
uint8 activations, MinMax ranges) on the exported fp32 graph (:func:`~.onnx_export.cached_onnx`), calibrated on
person crops made by OUR preprocessing (:func:`calibration_crops`) from images the user gives. The last conv
(the heatmap head) stays fp32: int8 steps on the heatmaps would quantise the DARK sub-pixel refinement itself.
Graphs are cached like the fp32 exports (key: fp32 graph + calibration crops + settings). The QDQ graph runs on
ONNX Runtime or OpenVINO (which reads QDQ ONNX as int8); ``backend='auto'`` measures which is faster.

Default calibration set for the built-in weights (:func:`default_calibration`): the 12 GT persons of
``../shared/data/coco_val2017_mini`` plus the 3 ``../shared/data/demo`` images as whole-image crops, read by path.
These are also the AP images of docs/precision.md (the set is tiny; calibrate on your own images for real use).

bf16: OpenVINO's ``INFERENCE_PRECISION_HINT=bf16``, only on CPUs with AVX512-BF16 or AMX; elsewhere refused
(:func:`check_precision`): without them OpenVINO silently runs f32 and torch emulates bf16 (its matmul ~60x
slower than fp32, measured, docs/precision.md), so "bf16" would be a slower fp32 or a slow emulation.
"""
import hashlib
import json
import logging
import os
import os.path as osp

import numpy as np

from ..errors import BackendError, InputError, OptionError

__all__ = ['PRECISIONS', 'check_precision', 'has_bf16', 'calibration_crops', 'default_calibration',
           'equalize_conv_inputs', 'quantize_onnx', 'cached_int8_onnx', 'reduced_precision_runner']

logger = logging.getLogger('kpt_plugin')

PRECISIONS = ('fp32', 'bf16', 'int8')
#: bumped whenever the quantisation settings change, so cached int8 graphs are rebuilt
QUANT_VERSION = 2
#: calibration crops kept at most (MinMax ranges settle within a few dozen crops; more only costs time)
MAX_CALIB_CROPS = 64
_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def has_bf16():
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    from .runtime.tuning import cpu_flags
    return bool({'avx512_bf16', 'amx_bf16'} & set(cpu_flags()))


def check_precision(precision, backend, device, onnx_path=None, instead='use fp32 or int8'):
    """Validate ``precision`` against the backend / device / CPU; returns it. ``instead``: what the bf16 refusal
    tells the user to do.

    Raises:
        OptionError: unknown precision, or one the chosen backend cannot run.
        BackendError: bf16 on a CPU without bf16 support.
    """
    if precision not in PRECISIONS:
        raise OptionError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    if precision == 'fp32':
        return precision
    if onnx_path is not None:
        raise OptionError(f'precision={precision!r} with onnx_path: the file runs as given; quantise it with '
                          '`kpt-plugin quantize` and pass the int8 file as onnx_path (precision fp32)')
    if device != 'cpu':
        raise OptionError(f'precision={precision!r} runs on cpu only here, not {device}')
    if precision == 'int8' and backend not in ('onnxruntime', 'openvino', 'auto'):
        raise OptionError(f"precision='int8' runs on the onnxruntime or openvino backend (or 'auto'), not "
                          f'{backend!r}')
    if precision == 'bf16':
        if backend not in ('openvino', 'auto'):
            raise OptionError(f"precision='bf16' runs on the openvino backend (or 'auto'), not {backend!r}")
        if not has_bf16():
            raise BackendError(f'this CPU has no bf16 support (no avx512_bf16/amx): {instead}')
    return precision


# ---------------------------------------------------------------------------------------------- calibration
def _coco_boxes(folder):
    """{file name: [x1, y1, x2, y2] boxes} of the person annotations of a COCO json in ``folder`` (or None)."""
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.json'):
            continue
        try:
            with open(osp.join(folder, name), encoding='utf-8') as f:
                coco = json.load(f)
        except (OSError, ValueError):
            continue
        if not (isinstance(coco, dict) and 'images' in coco and 'annotations' in coco):
            continue
        files = {im['id']: im['file_name'] for im in coco['images']}
        boxes = {}
        for a in coco['annotations']:
            if a.get('num_keypoints', 1) == 0 or a.get('iscrowd', 0):
                continue
            x, y, w, h = a['bbox']
            if w > 1 and h > 1:
                boxes.setdefault(osp.basename(files[a['image_id']]), []).append([x, y, x + w, y + h])
        return boxes
    return None


def calibration_crops(geometry, folders, max_crops=MAX_CALIB_CROPS):
    """Network inputs for calibration: our own crop + normalisation of the images in ``folders``.

    A folder with a COCO annotation json gives one crop per annotated person (keypoints > 0); images without
    annotations are one whole-image crop each.

    Args:
        geometry: the predictor's geometry (``box`` / ``whole`` / ``batch``).
        folders (list[str]): image folders.

    Returns:
        np.ndarray: (N, 3, H, W) float32.

    Raises:
        InputError: a folder that does not exist or holds no image.
    """
    from .inputs import Item, load_image
    jobs = []
    for folder in folders:
        folder = os.fspath(folder)
        if not osp.isdir(folder):
            raise InputError(f'--calib {folder}: not a folder; pass a folder of person images (jpg/png)')
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(_IMAGE_EXTS))
        if not names:
            raise InputError(f'--calib {folder}: holds no jpg/png image; pass a folder of person images')
        boxes = _coco_boxes(folder) or {}
        for name in names:
            path = osp.join(folder, name)
            img = load_image(Item(path, path))
            h, w = img.shape[:2]
            for box in boxes.get(name) or [None]:
                cs = geometry.whole(w, h) if box is None else geometry.box(np.asarray(box, np.float64))
                jobs.append((img, ) + tuple(cs))
    jobs = jobs[:max_crops]
    return np.ascontiguousarray(geometry.batch(jobs), dtype=np.float32)


def shared_dir():
    """``../shared`` beside the repo (or ``$KPT_PLUGIN_SHARED``), or None."""
    path = os.environ.get('KPT_PLUGIN_SHARED') or osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))), 'shared')
    return path if osp.isdir(osp.join(path, 'data')) else None


def default_calibration():
    """The default calibration folders (see the module doc).

    Raises:
        InputError: ``../shared`` is not there (then a calibration folder must be given).
    """
    shared = shared_dir()
    if shared is None:
        raise InputError('int8 needs calibration images and the default set (../shared/data) is not here: pass '
                         'a folder of person images (`kpt-plugin quantize --calib DIR`, create_model(calib=DIR))')
    return [osp.join(shared, 'data', 'coco_val2017_mini'), osp.join(shared, 'data', 'demo')]


# ---------------------------------------------------------------------------------------------- quantization
class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over fixed-size batches of ``crops``."""

    def __init__(self, input_name, crops, batch_size):
        n = len(crops)
        k = -(-n // batch_size) * batch_size
        # a fixed-batch graph takes exactly batch_size crops: wrap around to fill the last batch
        crops = crops[np.arange(k) % n]
        self._batches = iter([{input_name: crops[i:i + batch_size]} for i in range(0, k, batch_size)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self):  # quantize_static may call it; one pass is all MinMax needs
        pass


def _head_nodes(model, every_path=False):
    """Names of the nodes from the graph outputs back to the last Conv, that Conv included (kept fp32, see the
    module doc). The walk follows each node's first computed input (the flip-fused net ends in adds; what the
    cached int8 keypoint graphs were made with), or with ``every_path`` all of them (the detector's box decoding
    and score fusion join several branches)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    keep, seen, todo = [], set(), [(o.name, 0) for o in model.graph.output]
    while todo:
        name, depth = todo.pop()
        node = producers.get(name)
        if node is None or node.name in seen or (not every_path and depth >= 8):
            continue
        seen.add(node.name)
        keep.append(node.name)
        if node.op_type != 'Conv':
            inputs = [i for i in node.input if i in producers]
            todo.extend((i, depth + 1) for i in (inputs if every_path else inputs[:1]))
    return keep


def _channel_max(model, names, crops):
    """Per-channel max |x| over ``crops`` of the tensors ``names`` (the fp32 graph, run on ONNX Runtime)."""
    import onnx
    import onnxruntime as ort
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.output[:]
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    inp = sess.get_inputs()[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else 1
    peak = {}
    for feed in iter(_Reader(inp.name, crops, batch).get_next, None):
        for name, x in zip(names, sess.run(names, feed)):
            m = np.abs(x).max(axis=(0, 2, 3))
            peak[name] = np.maximum(peak.get(name, m), m)
    return peak


def equalize_conv_inputs(model, crops, dense_power=0.5):
    """Rescale the channels of every tensor that a Conv (+ ReLU) makes and only Convs read, so that they share
    one range (cross-layer equalisation, data-driven from the calibration crops).

    The official weights fold BatchNorm with tiny variances into the convs: some channels of a tensor are ~100x
    smaller than others and the next conv then multiplies them by up to ~80. One per-tensor int8 scale erases
    those channels (heatmaps off by 0.4 measured). Dividing producer channel i by s_i and multiplying every
    consumer's input channel i by s_i is the same function in real arithmetic (ReLU is positively homogeneous).
    Depthwise consumers are quantised per (output = input) channel, so they take any s_i: channels go to the
    largest one's range. Dense consumers share one weight scale per output row, so they get the geometric middle
    (``s_i = (max_i / top) ** dense_power``).

    Returns:
        int: number of tensors equalised (``model`` is changed in place).
    """
    from onnx import numpy_helper
    init = {i.name: i for i in model.graph.initializer}
    consumers, producer = {}, {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n
    outputs = {o.name for o in model.graph.output}

    def group(node):
        return next((a.i for a in node.attribute if a.name == 'group'), 1)

    def conv_reading(node, name):
        return node.op_type == 'Conv' and node.input[0] == name and node.input[1] in init

    def depthwise(node):
        dims = init[node.input[1]].dims
        return group(node) == dims[0] > 1 and dims[1] == 1

    plans = []
    for name, users in consumers.items():
        if name in outputs or not users or not all(conv_reading(u, name) for u in users):
            continue
        node = conv = producer.get(name)
        if node is not None and node.op_type == 'Relu':
            conv = producer.get(node.input[0])
            if len(consumers.get(node.input[0], [])) != 1:
                continue
        if (conv is None or conv.op_type != 'Conv' or conv.input[1] not in init or len(conv.input) < 3
                or conv.input[2] not in init or group(conv) != 1 and not depthwise(conv)):
            continue
        plans.append((name, conv, users))
    if not plans:
        return 0
    peak = _channel_max(model, [p[0] for p in plans], crops)

    def update(t, value):
        t.CopyFrom(numpy_helper.from_array(value.astype(np.float32), t.name))

    for name, conv, users in plans:
        amax = peak[name]
        top = float(amax.max())
        if top <= 0:
            continue
        power = 1.0 if all(depthwise(u) for u in users) else dense_power
        # dead channels (max 0) are left alone
        s = np.where(amax > 0, np.clip(amax / top, 1e-4, 1.0) ** power, 1.0).astype(np.float32)
        update(init[conv.input[1]], numpy_helper.to_array(init[conv.input[1]]) / s.reshape(-1, 1, 1, 1))
        update(init[conv.input[2]], numpy_helper.to_array(init[conv.input[2]]) / s)
        for u in users:
            w = numpy_helper.to_array(init[u.input[1]])
            g = group(u)
            if depthwise(u):
                w = w * s.reshape(-1, 1, 1, 1)
            else:
                o, cin = w.shape[0], w.shape[1]
                w = (w.reshape(g, o // g, cin, *w.shape[2:]) * s.reshape(g, 1, cin, 1, 1)).reshape(w.shape)
            update(init[u.input[1]], w)
    return len(plans)


def _reduce_range():
    # without VNNI, x86 int8 kernels sum u8*s8 pairs in int16 and saturate; 7-bit weights avoid it (measured:
    # argmax agreement 0.49 -> 0.62 on the fixture crops on an AVX2 EPYC)
    from .runtime.tuning import cpu_flags
    return not {'avx512_vnni', 'avx_vnni', 'amx_int8'} & set(cpu_flags())


def quantize_onnx(fp32_path, out, crops, reduce_range=None, op_types=None, exclude=None, extra_options=None):
    """Static int8 QDQ quantisation of ``fp32_path`` into ``out`` (atomically), calibrated on ``crops``.

    Args:
        crops (np.ndarray): calibration network inputs (N, 3, H, W).
        reduce_range (bool, optional): 7-bit weights; default: on CPUs without VNNI.
        op_types (list[str], optional): op types to quantise (default: every type ONNX Runtime's QDQ quantiser
            knows).
        exclude (list[str], optional): names of the nodes kept fp32 (default: the heatmap head).
        extra_options (dict, optional): more of ``quantize_static``'s ``extra_options`` (e.g.
            ``OpTypesToExcludeOutputQuantization``).

    Returns:
        str: ``out``.
    """
    import onnx
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise BackendError('int8 needs onnxruntime (its quantization tool): pip install onnxruntime') from None
    from weight_convert.io import atomic_output
    reduce_range = _reduce_range() if reduce_range is None else bool(reduce_range)
    model = onnx.load(fp32_path)
    inp = model.graph.input[0]
    dim = inp.type.tensor_type.shape.dim[0]
    batch = dim.dim_value if dim.HasField('dim_value') else 1
    equalized = equalize_conv_inputs(model, crops)
    logger.info('int8: %d conv inputs equalised before calibration', equalized)
    with atomic_output(out) as tmp:
        onnx.save(model, tmp)
        quantize_static(tmp, tmp, _Reader(inp.name, crops, batch), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=_head_nodes(model) if exclude is None else list(exclude),
                        reduce_range=reduce_range, op_types_to_quantize=op_types,
                        extra_options=dict(ActivationSymmetric=False, WeightSymmetric=True, **(extra_options or {})))
    return out


def fix_batch(model, batch_size):
    """``model`` (dynamic batch) with its batch dimension fixed to ``batch_size``, in place (the runtimes then fold
    the shape arithmetic away, as on the fixed-batch fp32 exports)."""
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = int(batch_size)
    return model


def cached_int8_onnx(pose_model, checkpoint, input_size, flip, batch_size, crops):
    """The int8 graph of (checkpoint, size, flip, batch) calibrated on ``crops``, cached.

    ONNX Runtime's quantiser takes ~30-50 s per graph on 2 cores whatever the batch, so the dynamic-batch graph
    is quantised once and each batch bucket is that graph with its batch dimension fixed (:func:`fix_batch`).
    """
    import onnx

    from ..zoo.hub import cached_file
    from .onnx_export import cached_onnx
    from weight_convert.io import atomic_output
    fp32 = cached_onnx(pose_model, checkpoint, input_size, flip=flip, batch_size=None)
    digest = hashlib.sha256(np.ascontiguousarray(crops).tobytes()).hexdigest()[:12]
    stem = fp32[:-len('.onnx')] + f'-int8q{QUANT_VERSION}{"r" if _reduce_range() else ""}-c{digest}'
    dynamic = cached_file(stem + '.onnx', lambda o: quantize_onnx(fp32, o, crops), 'int8 graph')
    if batch_size is None:
        return dynamic

    def build(out):
        with atomic_output(out) as tmp:
            onnx.save(fix_batch(onnx.load(dynamic), batch_size), tmp)

    return cached_file(stem.replace('-bdyn-', f'-b{int(batch_size)}-') + '.onnx', build, 'int8 graph')


# ---------------------------------------------------------------------------------------------- runners
def _int8_class(base):

    class Int8Backend(base):
        """``base`` on int8 QDQ graphs (one per batch bucket, quantised once and cached)."""

        precision = 'int8'

        def __init__(self, *args, calib_crops=None, **kwargs):
            self.calib_crops = calib_crops
            super().__init__(*args, **kwargs)

        def _bucket_session(self, size):
            if size not in self.sessions:
                pose_model, checkpoint, input_size, flip = self._export_args
                path = cached_int8_onnx(pose_model, checkpoint, input_size, flip, size, self.calib_crops)
                self.sessions[size] = self._load(path)
                self.onnx_path = path
            return self.sessions[size]

    Int8Backend.__name__ = f'Int8{base.__name__}'
    return Int8Backend


def _bf16_class(base):

    class Bf16Backend(base):
        """OpenVINO with the bf16 inference-precision hint (CPUs with AVX512-BF16 / AMX)."""

        precision = 'bf16'

        def _load(self, path):
            config = {'INFERENCE_PRECISION_HINT': 'bf16', 'PERFORMANCE_HINT': 'LATENCY',
                      'INFERENCE_NUM_THREADS': self.threads}
            return self._core.compile_model(self._core.read_model(path), 'CPU', config).create_infer_request()

    return Bf16Backend


_CROPS = {}


def _calib_crops(predictor, calib):
    folders = [calib] if isinstance(calib, (str, os.PathLike)) else list(calib or default_calibration())
    key = (tuple(map(os.fspath, folders)), predictor.geometry.name, predictor.input_size)
    if key not in _CROPS:
        _CROPS[key] = calibration_crops(predictor.geometry, folders)
    return _CROPS[key]


def reduced_precision_runner(predictor, backend, threads, precision, calib=None):
    """The runner of ``predictor`` on ``backend`` at ``precision`` (``'int8'`` or ``'bf16'``)."""
    from .runtime import backend_class
    base = backend_class(backend)
    kwargs = dict(device=predictor.device, threads=threads, pose_model=predictor.pose_model,
                  checkpoint=predictor.checkpoint, input_size=predictor.input_size, flip=predictor.flip)
    if precision == 'int8':
        return _int8_class(base)(calib_crops=_calib_crops(predictor, calib), **kwargs)
    if precision == 'bf16':
        if backend != 'openvino':
            raise OptionError(f"precision='bf16' runs on the openvino backend, not {backend!r}")
        return _bf16_class(base)(**kwargs)
    raise OptionError(f'no reduced-precision runner for {precision!r}')
