"""Networks for inference: the MMPose model reduced to image -> heatmaps, BN folding, flip fused into the batch.

PP-TinyPose's flip test (ppdet ``TopDownHRNet``): run the horizontally flipped image, flip the heatmaps back,
swap left/right joints, shift them right by one column (column 0 kept) and average with the plain pass.
:class:`FlipFusedNet` does both passes in ONE forward of a 2N batch.
"""
import os.path as osp

import torch
from torch import nn

__all__ = ['COCO_FLIP_INDICES', 'HeatmapNet', 'FlipFusedNet', 'fold_batchnorm', 'fold_channel_shuffles',
           'check_shuffle_inputs_nonnegative', 'build_pose_model', 'WeightsError']

#: COCO-17 joint index after a horizontal flip (left <-> right)
COCO_FLIP_INDICES = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


class WeightsError(ValueError):
    """A checkpoint that cannot be loaded into PP-TinyPose."""


def build_pose_model(config, checkpoint, device='cpu'):
    """Build the MMPose ``TopdownPoseEstimator`` of ``config`` and load ``checkpoint`` strictly.

    Raises:
        WeightsError: the file is not a checkpoint, or its tensors do not fit the model (names the file).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_state_dict
    from mmpose.registry import MODELS
    import kpt_plugin  # noqa: F401 - registers our modules
    from kpt_plugin.compat import load_checkpoint_file

    cfg = Config.fromfile(config)
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    try:
        ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise WeightsError(f'{checkpoint}: not a readable PyTorch checkpoint ({type(e).__name__}: {e}); pass '
                           'a .pth written by `kpt-plugin convert`, or the original .pdparams') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f'{checkpoint}: holds no state dict of tensors; is it a model checkpoint?')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    ref = model.state_dict()
    missing = [k for k in ref if k not in state and not k.endswith('num_batches_tracked')]
    unknown = [k for k in state if k not in ref]
    shapes = [k for k in state if k in ref and state[k].shape != ref[k].shape]
    if missing or unknown or shapes:
        raise WeightsError(
            f'{checkpoint}: weights do not fit {osp.basename(config)}: {len(missing)} missing, {len(unknown)} '
            f'unknown, {len(shapes)} mis-shaped tensors (e.g. {(missing + unknown + shapes)[:3]}); is this a '
            'PP-TinyPose checkpoint?')
    load_state_dict(model, state, strict=True)
    model.cfg = cfg
    return model.to(device).eval()


class HeatmapNet(nn.Module):
    """Normalised (N, 3, H, W) image batch -> (N, 17, H/4, W/4) heatmaps (backbone + 1x1 final conv)."""

    def __init__(self, pose_model):
        super().__init__()
        self.backbone = pose_model.backbone
        self.final_layer = pose_model.head.final_layer

    def forward(self, x):
        return self.final_layer(self.backbone(x)[-1])


class FlipFusedNet(nn.Module):
    """ppdet's flip test in one forward: ``net(cat(x, flip(x)))``, flip back, swap joints, shift, average."""

    def __init__(self, net, flip_indices=COCO_FLIP_INDICES, shift=True):
        super().__init__()
        self.net = net
        self.register_buffer('flip_indices', torch.tensor(flip_indices, dtype=torch.long), persistent=False)
        self.shift = shift

    def forward(self, x):
        n = x.shape[0]
        out = self.net(torch.cat([x, torch.flip(x, dims=[3])], dim=0))
        plain, flipped = out[:n], out[n:]
        flipped = torch.flip(flipped, dims=[3]).index_select(1, self.flip_indices)
        if self.shift:
            flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=3)
        return (plain + flipped) * 0.5


def _fuse(conv, bn):
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


def fold_batchnorm(module):
    """Fold every eval-mode BatchNorm that follows a conv into that conv's weight/bias (in place).

    Handles mmcv ``ConvModule`` (conv -> norm order) and ``nn.Sequential`` runs of Conv2d, BatchNorm2d.

    Returns:
        int: number of BatchNorms folded.
    """
    from mmcv.cnn import ConvModule
    folded = 0
    for m in list(module.modules()):
        if isinstance(m, ConvModule) and m.with_norm and isinstance(m.norm, nn.BatchNorm2d):
            order = list(m.order)
            if order.index('conv') < order.index('norm'):
                m.conv = _fuse(m.conv, m.norm)
                setattr(m, m.norm_name, nn.Identity())
                folded += 1
        elif isinstance(m, nn.Sequential):
            names = list(m._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = m._modules[a], m._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    m._modules[a] = _fuse(conv, bn)
                    m._modules[b] = nn.Identity()
                    folded += 1
    return folded


class _FusedShuffleUnit(nn.Sequential):
    """A stride-1 ShuffleNet unit as three plain convs (see :func:`fold_channel_shuffles`)."""


def _shuffle_unit_as_convs(unit):
    """Rewrite a BN-folded stride-1 ``ShuffleUnit``: split -> branch -> concat -> channel shuffle becomes
    conv1x1+ReLU -> depthwise 3x3 -> conv1x1+ReLU over all channels.

    The pass-through half rides along as identity channels (exact: weight 1, bias 0; the ReLUs leave it
    unchanged because every unit input is a ReLU output, i.e. >= 0), and the closing channel shuffle is a
    permutation of the last conv's output channels.
    """
    pw1, dw, pw2 = (m.conv for m in unit.branch2)
    half = pw1.in_channels
    c = 2 * half
    dev, dt = pw1.weight.device, pw1.weight.dtype

    def bias(conv):
        return conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=dev, dtype=dt)

    eye = torch.eye(half, device=dev, dtype=dt)[:, :, None, None]
    # (a 2-group first conv would halve its multiply-adds but measured slower on ONNX Runtime and torch)
    conv1 = nn.Conv2d(c, c, 1, bias=True)
    w = torch.zeros(c, c, 1, 1, device=dev, dtype=dt)
    w[:half, :half] = eye
    w[half:, half:] = pw1.weight.detach()
    conv1.weight.data, conv1.bias.data = w, torch.cat([torch.zeros(half, device=dev, dtype=dt), bias(pw1)])

    conv2 = nn.Conv2d(c, c, 3, stride=1, padding=1, groups=c, bias=True)
    w = torch.zeros(c, 1, 3, 3, device=dev, dtype=dt)
    w[:half, 0, 1, 1] = 1
    w[half:] = dw.weight.detach()
    conv2.weight.data, conv2.bias.data = w, torch.cat([torch.zeros(half, device=dev, dtype=dt), bias(dw)])

    w = torch.zeros(c, c, 1, 1, device=dev, dtype=dt)
    w[:half, :half] = eye
    w[half:, half:] = pw2.weight.detach()
    b = torch.cat([torch.zeros(half, device=dev, dtype=dt), bias(pw2)])
    # channel_shuffle(out, 2): output j <- input (j % 2) * half + j // 2
    perm = torch.tensor([(j % 2) * half + j // 2 for j in range(c)], device=dev)
    conv3 = nn.Conv2d(c, c, 1, bias=True)
    conv3.weight.data, conv3.bias.data = w[perm].contiguous(), b[perm].contiguous()
    return _FusedShuffleUnit(conv1, nn.ReLU(inplace=True), conv2, conv3, nn.ReLU(inplace=True))


def fold_channel_shuffles(module):
    """Replace every stride-1 ``ShuffleUnit`` (BN already folded) by three plain convs; in place.

    Removes the Split/Concat/Reshape/Transpose nodes of each unit (the bulk of LiteHRNet's small ops) at the
    cost of full-width 1x1 convs (4x their multiply-adds; still faster on CPU: 0.8-0.9x the time of the
    unfolded graph on ONNX Runtime and in eager PyTorch, see ``benchmarks/``). Exact up to float summation
    order, given unit inputs >= 0 (true in LiteHRNet: every unit input is a ReLU output;
    :func:`check_shuffle_inputs_nonnegative` verifies it).

    Returns:
        int: number of units rewritten.
    """
    from mmpose.models.backbones.litehrnet import ShuffleUnit
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ShuffleUnit) and child.stride == 1:
                if any(m.with_norm and not isinstance(m.norm, nn.Identity) for m in child.branch2):
                    raise ValueError('fold_channel_shuffles needs BatchNorm folded first (fold_batchnorm)')
                setattr(parent, name, _shuffle_unit_as_convs(child))
                count += 1
    return count


def check_shuffle_inputs_nonnegative(module, x):
    """Run ``module(x)`` and return the smallest value entering any stride-1 ``ShuffleUnit`` (must be >= 0)."""
    from mmpose.models.backbones.litehrnet import ShuffleUnit
    lows = []
    hooks = [m.register_forward_pre_hook(lambda m, a: lows.append(float(a[0].min())))
             for m in module.modules() if isinstance(m, ShuffleUnit) and m.stride == 1]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return min(lows) if lows else None
