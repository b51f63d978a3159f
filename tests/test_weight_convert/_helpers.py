"""Shared helpers for the weight-conversion tests: run our model from a converted checkpoint."""
import functools

import numpy as np
import torch


@functools.lru_cache(maxsize=2)
def _model(arch):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import kpt_plugin  # noqa: F401
    from mmpose.registry import MODELS
    from weight_convert.convert import config_path
    init_default_scope('mmpose')
    return MODELS.build(Config.fromfile(config_path(arch)).model).eval()


def heatmaps(checkpoint, x, arch='PP-TinyPose_128x96'):
    """Raw heatmaps (N, 17, h, w) of our model with ``checkpoint`` on NCHW float32 ``x``."""
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    model = _model(arch)
    missing, unexpected = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        return model.head(model.extract_feat(torch.from_numpy(np.ascontiguousarray(x)))).numpy()


def openvino_heatmaps(xml, x):
    """The OpenVINO runtime (f32 inference precision) on ``x``, batch by batch of one."""
    import openvino as ov
    core = ov.Core()
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
