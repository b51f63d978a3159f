"""PicoDet helpers for the weight-conversion tests: the shared sources, our mmdet model on the goldens, and the
synthetic forms no file here holds (real-BN training weights, a Paddle 2.x deploy directory)."""
import functools
import os.path as osp
import pickle
import re

import numpy as np

from ._helpers import REPO, write_legacy

SIZES = (192, 320)
IR = 'weights/picodet_s_lcnet_pedestrian_openvino_fp16'
PIR = 'weights/picodet_s_lcnet_pedestrian_paddle_inference'
FIXTURES = 'fixtures/picodet'
#: fixture images: the 4 COCO ones, then the demo photos
STEMS = ('000000000785', '000000040083', '000000196141', '000000197388', 'demo_2', 'demo_4', 'demo_7')


def arch_of(size):
    return f'picodet_s_lcnet_pedestrian_{size}'


def folded_pdparams(shared_dir, size):
    """The fixtures' ppdet state dict (BN as identity carrying the folded bias; tensors = the fp16 IR's)."""
    return osp.join(shared_dir, FIXTURES, f'picodet_s_{size}_lcnet_pedestrian_folded.pdparams')


@functools.lru_cache(maxsize=2)
def build_detector(arch):
    """Our mmdet PicoDet of ``arch``, built once (no weights: each test loads its own)."""
    import kpt_plugin  # noqa: F401 - compat layer and registration first
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from weight_convert.archs import get_arch
    cfg = Config.fromfile(osp.join(REPO, get_arch(arch).config))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    model.cfg = cfg  # as init_detector sets it
    return model


def raw_outputs(checkpoint, x, arch):
    """ppdet's pre-NMS ``(boxes (1, N, 4), scores (1, 1, N))`` of our model with ``checkpoint`` on input ``x``."""
    import torch
    model = build_detector(arch)
    sd = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    missing, unexpected = model.load_state_dict(sd, strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        boxes, scores = model.bbox_head.decode(*model._forward(torch.from_numpy(x)))
    return boxes.numpy(), scores.numpy()


def unfold_bn(folded, table, seed=0):
    """A real-BN ppdet state (random gamma / mean / variance) computing the same network as ``folded``.

    Each folded conv ``W``, identity BN + bias ``b`` becomes ``W * s`` and ``BN(gamma, beta, mean, var)`` with
    ``s = sqrt(var + eps) / gamma`` and ``beta = b + gamma * mean / sqrt(var + eps)`` (float64, then float32):
    what a training checkpoint looks like, with the released network's function.
    """
    from weight_convert.tables import BN_EPS
    rng = np.random.default_rng(seed)
    out = dict(folded)
    for s in table.with_norm:
        c = folded[s.norm + '.bias'].shape[0]
        gamma, var = rng.uniform(0.5, 2.0, c), rng.uniform(0.25, 4.0, c)
        mean, std = rng.normal(0., 1., c), np.sqrt(var + BN_EPS)
        out[s.conv + '.weight'] = (folded[s.conv + '.weight'] * (std / gamma).reshape(-1, 1, 1, 1)).astype(np.float32)
        out[s.norm + '.weight'] = gamma.astype(np.float32)
        out[s.norm + '.bias'] = (folded[s.norm + '.bias'] + gamma * mean / std).astype(np.float32)
        out[s.norm + '._mean'] = mean.astype(np.float32)
        out[s.norm + '._variance'] = var.astype(np.float32)
    return out


def fold_bn(state, table):
    """``{conv prefix: (weight, bias)}`` of a real-BN ppdet state with each BN folded in (float64)."""
    from weight_convert.tables import BN_EPS
    out = {}
    for s in table.with_norm:
        k = state[s.norm + '.weight'] / np.sqrt(state[s.norm + '._variance'].astype(np.float64) + BN_EPS)
        out[s.conv] = (state[s.conv + '.weight'] * k.reshape(-1, 1, 1, 1),
                       state[s.norm + '.bias'] - state[s.norm + '._mean'] * k)
    return out


def write_deploy_dir(directory, state, table, size, info=True, alias_heads=True, offset=0):
    """A Paddle 2.x deploy directory as PaddleDetection's tiny_pose README lists it (``model.pdmodel``,
    ``model.pdiparams``, ``model.pdiparams.info``, ``infer_cfg.yml``) holding the ppdet ``state``.

    Tensors carry Paddle framework names (``conv2d_K.w_0``, ``batch_norm2d_K.w_1``: the table's creation numbers
    + ``offset``) plus the export constants (anchors, strides, DFL projection) under non-weight names. With
    ``info`` the ``.pdiparams.info`` maps them to structured names, the predictors by their alias
    (``head.head_cls0``) when ``alias_heads``.
    """
    from weight_convert.families.picodet import export_constants
    tensors, structured = {}, {}
    for name, fw in table.paddle_framework_names().items():
        if name not in state:
            continue
        fw = re.sub(r'_(\d+)\.', lambda m: f'_{int(m.group(1)) + offset}.', fw, count=1)
        tensors[fw] = state[name]
        structured[fw] = re.sub(r'^head\.head_(cls|reg)_list\.(\d+)\.', r'head.head_\1\2.', name) if alias_heads \
            else name
    for i, arr in enumerate(export_constants((size, size)).values()):
        tensors[f'generated_tensor_{i}'] = arr
    write_legacy(str(directory), tensors, input_hw=(size, size))
    if info:
        with open(osp.join(directory, 'model.pdiparams.info'), 'wb') as f:
            pickle.dump({fw: {'structured_name': n} for fw, n in structured.items()}, f, protocol=2)
    (directory / 'infer_cfg.yml').write_text(
        f'mode: paddle\narch: PicoDet\nPreprocess:\n- interp: 2\n  keep_ratio: false\n  target_size:\n  - {size}\n'
        f'  - {size}\n  type: Resize\nlabel_list:\n- person\nfpn_stride: [8, 16, 32, 64]\n')
    return directory
