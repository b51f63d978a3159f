"""Shared helpers for the weight-conversion tests: run our model from a converted checkpoint, run the source
runtimes, and write synthetic Paddle 2.x inference models."""
import functools
import os.path as osp
import struct

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIZES = ('128x96', '256x192')
IR = 'weights/pp_tinypose_enhance_openvino_fp16'
NCNN = 'weights/pp_tinypose_2021_ncnn_fp16'
PADDLEX = 'weights/paddlex_inference_enhance'


def config_path(arch):
    """The MMPose config of ``arch`` in this source tree."""
    from weight_convert.archs import get_arch
    return osp.join(REPO, get_arch(arch).config)


@functools.lru_cache(maxsize=2)
def build_model(arch):
    """Our MMPose model of ``arch``, freshly built (kpt_plugin registers its modules)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import kpt_plugin  # noqa: F401
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    return MODELS.build(Config.fromfile(config_path(arch)).model).eval()


def heatmaps(checkpoint, x, arch='pp_tinypose_128x96'):
    """Raw heatmaps (N, 17, h, w) of our model with ``checkpoint`` on NCHW float32 ``x``."""
    import torch
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    model = build_model(arch)
    missing, unexpected = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        return model.head(model.extract_feat(torch.from_numpy(np.ascontiguousarray(x)))).numpy()


def argmax(h):
    """Per-joint flat argmax of heatmaps (N, K, h, w)."""
    return h.reshape(h.shape[0], h.shape[1], -1).argmax(-1)


def openvino_heatmaps(xml, x):
    """The OpenVINO runtime (f32 inference precision) on ``x``, batch by batch of one."""
    from kpt_plugin._compat import openvino_core
    core = openvino_core()
    compiled = core.compile_model(core.read_model(xml), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    out = [o for o in compiled.outputs if len(o.get_partial_shape()) == 4][0]
    return np.concatenate([compiled([x[i:i + 1]])[out] for i in range(len(x))])


def ncnn_heatmaps(param, binfile, x):
    """The ncnn runtime (fp32 arithmetic, fp16 storage off) on ``x``."""
    import ncnn
    net = ncnn.Net()
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_fp16_packed = False
    net.opt.use_packing_layout = False
    net.opt.use_winograd_convolution = False
    net.opt.use_sgemm_convolution = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(binfile)) == 0
    outs = []
    for i in range(len(x)):
        inp = ncnn.Mat(np.ascontiguousarray(x[i]))
        ex = net.create_extractor()
        ex.input('image', inp)
        ret, mat = ex.extract('save_infer_model/scale_0.tmp_1')
        assert ret == 0
        outs.append(np.array(mat, dtype=np.float32, copy=True)[None])
        # ncnn aborts if its blobs outlive the net: release them first
        del mat, ex, inp
    del net
    return np.concatenate(outs)


def write_pdparams(path, state):
    """A ``paddle.save``-like file holding ``state`` (plain pickle protocol 2, as ppdet 2.x wrote)."""
    import pickle
    with open(path, 'wb') as f:
        pickle.dump(dict(state, **{'StructuredToParameterName@@': {k: k for k in state}}), f, protocol=2)


# ------------------------------------------------------------------------- legacy .pdmodel (synthetic)
# No released legacy inference model is reachable here, so the tests write one following Paddle's
# paddle/fluid/framework/framework.proto (ProgramDesc > BlockDesc > VarDesc/OpDesc) and the combined
# params layout (SerializeToStream records in sorted-name order).

def pb_varint(n):
    """Protobuf base-128 varint (negative numbers as 64-bit two's complement)."""
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(no, value):
    """One protobuf field: varint for ints, length-delimited for str/bytes."""
    if isinstance(value, int):
        return pb_varint(no << 3) + pb_varint(value)
    value = value.encode() if isinstance(value, str) else value
    return pb_varint(no << 3 | 2) + pb_varint(len(value)) + value


def pb_tensor_desc(dtype, dims):
    return pb_field(1, dtype) + b''.join(pb_field(2, d) for d in dims)


def _var(name, vtype, persistable, dims=None):
    vt = pb_field(1, vtype)
    if dims is not None:
        vt += pb_field(3, pb_field(1, pb_tensor_desc(5, dims)))  # LoDTensorDesc{tensor: TensorDesc}
    return pb_field(1, name) + pb_field(2, vt) + pb_field(3, int(persistable))


def _op(type_, inputs, outputs):
    enc = b''
    for no, args in ((1, inputs), (2, outputs)):
        for param, names in args.items():
            enc += pb_field(no, pb_field(1, param) + b''.join(pb_field(2, n) for n in names))
    return enc + pb_field(3, type_)


def write_legacy(directory, tensors, input_hw=(128, 96)):
    """Write model.pdmodel + model.pdiparams holding ``tensors`` ({framework name: array})."""
    block = pb_field(1, 0) + pb_field(2, -1)
    block += pb_field(3, _var('feed', 9, True)) + pb_field(3, _var('fetch', 10, True))
    block += pb_field(3, _var('image', 7, False, [-1, 3, *input_hw]))
    for name, arr in tensors.items():
        block += pb_field(3, _var(name, 7, True, list(arr.shape)))
    block += pb_field(4, _op('feed', {'X': ['feed']}, {'Out': ['image']}))
    with open(osp.join(directory, 'model.pdmodel'), 'wb') as f:
        f.write(pb_field(1, block))
    with open(osp.join(directory, 'model.pdiparams'), 'wb') as f:
        for name in sorted(tensors):
            arr = np.ascontiguousarray(tensors[name], '<f4')
            desc = pb_tensor_desc(5, list(arr.shape))
            f.write(struct.pack('<IQIi', 0, 0, 0, len(desc)) + desc + arr.tobytes())
