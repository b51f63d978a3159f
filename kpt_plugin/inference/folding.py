"""Exact graph rewrites for inference (same function, fewer or cheaper ops): BatchNorm folded into convs, channel
shuffles folded into convs, fuse-layer sums regrouped, the stem's split removed; one fold plan per runtime."""
import torch
from torch import nn

__all__ = ['fold_batchnorm', 'fold_channel_shuffles', 'check_shuffle_inputs_nonnegative', 'fold_fuse_layers',
           'fold_stem', 'fold_for_inference', 'FOLD_PLANS']

#: the classes the rewrites recognise, by qualified name (so folding imports neither MMPose nor mmcv): those of
#: the MMPose model our configs build and their plain-torch twins in :mod:`.litehrnet`
_ROLES = {f'{mod}.{cls}': cls for mod, classes in (
    ('mmcv.cnn.bricks.conv_module', ('ConvModule', )),
    ('mmpose.models.backbones.litehrnet', ('ShuffleUnit', 'LiteHRModule', 'Stem')),
    ('kpt_plugin.inference.litehrnet', ('ConvModule', 'ShuffleUnit', 'LiteHRModule', 'Stem'))) for cls in classes}


def _is(module, role):
    """Whether ``module`` is an instance of a class (or a subclass of one) playing ``role`` in :data:`_ROLES`."""
    return any(_ROLES.get(f'{c.__module__}.{c.__qualname__}') == role for c in type(module).__mro__)


def _fuse(conv, bn):
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


def fold_batchnorm(module):
    """Fold every eval-mode BatchNorm that follows a conv into that conv's weight/bias (in place).

    Handles ``ConvModule`` (mmcv's and :mod:`.litehrnet`'s; conv -> norm order) and ``nn.Sequential`` runs of
    Conv2d, BatchNorm2d.

    Returns:
        int: number of BatchNorms folded.
    """
    folded = 0
    for m in list(module.modules()):
        if _is(m, 'ConvModule') and m.with_norm and isinstance(m.norm, nn.BatchNorm2d):
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


def _shuffle_unit_as_convs(unit, group_conv1=None):
    """Rewrite a BN-folded stride-1 ``ShuffleUnit``: split -> branch -> concat -> channel shuffle becomes
    conv1x1+ReLU -> depthwise 3x3 -> conv1x1+ReLU over all channels.

    The pass-through half rides along as identity channels (exact: weight 1, bias 0; the ReLUs leave it
    unchanged because every unit input is a ReLU output, i.e. >= 0), and the closing channel shuffle is a
    permutation of the last conv's output channels.

    Args:
        group_conv1 (bool, optional): make the first conv a 2-group conv (half its multiply-adds); None = only
            when each group is a whole number of 16-float channel blocks.
    """
    pw1, dw, pw2 = (m.conv for m in unit.branch2)
    half = pw1.in_channels
    c = 2 * half
    dev, dt = pw1.weight.device, pw1.weight.dtype

    def bias(conv):
        return conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=dev, dtype=dt)

    eye = torch.eye(half, device=dev, dtype=dt)[:, :, None, None]
    # A 2-group first conv halves its multiply-adds. On ONNX Runtime and torch it pays off only when each
    # group is a whole number of NCHWc channel blocks (16 floats with AVX-512), i.e. on the 160/320-channel
    # branches (20/40-channel groups measured slower than the dense conv); OpenVINO gains on every branch.
    if group_conv1 is None:
        group_conv1 = half % 16 == 0
    if group_conv1:
        conv1 = nn.Conv2d(c, c, 1, groups=2, bias=True)
        conv1.weight.data = torch.cat([eye, pw1.weight.detach()])
        conv1.bias.data = torch.cat([torch.zeros(half, device=dev, dtype=dt), bias(pw1)])
    else:
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


def fold_channel_shuffles(module, unaligned_only=False, group_conv1=None):
    """Replace every stride-1 ``ShuffleUnit`` (BN already folded) by three plain convs; in place.

    Removes the Split/Concat/Reshape/Transpose nodes of each unit (the bulk of LiteHRNet's small ops) at the
    cost of full-width 1x1 convs (4x their multiply-adds; still faster on CPU: 0.8-0.9x the time of the
    unfolded graph on ONNX Runtime and in eager PyTorch, see ``benchmarks/``). Exact up to float summation
    order, given unit inputs >= 0 (true in LiteHRNet: every unit input is a ReLU output;
    :func:`check_shuffle_inputs_nonnegative` verifies it).

    Args:
        unaligned_only (bool): rewrite only the units whose halves are not a whole number of 16-channel blocks
            (OpenVINO splits and concatenates aligned halves cheaply; there the wider convs cost more).
        group_conv1 (bool, optional): see :func:`_shuffle_unit_as_convs`.

    Returns:
        int: number of units rewritten.
    """
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if _is(child, 'ShuffleUnit') and child.stride == 1:
                if any(m.with_norm and not isinstance(m.norm, nn.Identity) for m in child.branch2):
                    raise ValueError('fold_channel_shuffles needs BatchNorm folded first (fold_batchnorm)')
                if unaligned_only and child.branch2[0].conv.in_channels % 16 == 0:
                    continue
                setattr(parent, name, _shuffle_unit_as_convs(child, group_conv1))
                count += 1
    return count


def check_shuffle_inputs_nonnegative(module, x):
    """Run ``module(x)`` and return the smallest value entering any stride-1 ``ShuffleUnit`` (must be >= 0)."""
    lows = []
    hooks = [m.register_forward_pre_hook(lambda m, a: lows.append(float(a[0].min())))
             for m in module.modules() if _is(m, 'ShuffleUnit') and m.stride == 1]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return min(lows) if lows else None


def _scale_last_conv(seq, factor):
    """Multiply the last ``Conv2d`` in ``seq`` (weight and bias) by ``factor``; False when there is none."""
    convs = [m for m in seq.modules() if isinstance(m, nn.Conv2d)]
    if not convs or convs[-1].bias is None:
        return False
    convs[-1].weight.data.mul_(factor)
    convs[-1].bias.data.mul_(factor)
    return True


def _up2(x):
    return nn.functional.interpolate(x, scale_factor=2.0, mode='nearest')


class _FoldedFuseModule(nn.Module):
    """A NAIVE ``LiteHRModule`` (BN folded) with its fuse step regrouped; same result up to summation order.

    MMPose's fuse step (``y = out[0]`` then ``y += out[j]`` for every j, ``i == j`` included) counts branch 0
    twice, adds into ``out[0]`` in place (so outputs ``i >= 1`` read the pre-ReLU fused branch 0) and counts
    ``fuse_layers[i][0]`` twice. Here the doubling is a factor 2 in the last conv (exact in floating point;
    the ReLUs commute with it), the upsampled terms are nested at the coarse resolutions
    (``up2(c1 + up2(c2 + up2(c3)))`` = ``up2(c1) + up4(c2) + up8(c3)`` for nearest upsampling) and every sum
    ends on a conv output, so ONNX Runtime fuses each add (and the ReLU) into the conv.
    """

    def __init__(self, module):
        super().__init__()
        self.layers = module.layers
        self.num_branches = module.num_branches
        self.ups = nn.ModuleList()  # ups[i][j - i - 1]: the 1x1 conv of fuse_layers[i][j], j > i
        self.downs = nn.ModuleList()  # downs[i][j]: fuse_layers[i][j], j < i
        for i, layer in enumerate(module.fuse_layers):
            self.ups.append(nn.ModuleList(layer[j][0] for j in range(i + 1, self.num_branches)))
            self.downs.append(nn.ModuleList(layer[j] for j in range(i)))
            if i >= 1 and not _scale_last_conv(layer[0], 2.0):
                raise ValueError('fold_fuse_layers needs BatchNorm folded first (fold_batchnorm)')
        last = self.layers[0][-1]
        # 2 * relu(z) == relu(2 * z) exactly; only possible when the last unit ends on a conv + ReLU
        self.x0_doubled = isinstance(last, _FusedShuffleUnit) and _scale_last_conv(last, 2.0)

    def _up_sum(self, i, out):
        s = None
        for k in range(self.num_branches - 1, i, -1):
            c = self.ups[i][k - i - 1](out[k])
            s = c if s is None else c + _up2(s)
        return None if s is None else _up2(s)

    def forward(self, x):
        out = [self.layers[i](x[i]) for i in range(self.num_branches)]
        x0 = out[0] if self.x0_doubled else out[0] + out[0]
        up = self._up_sum(0, out)
        y0 = x0 if up is None else x0 + up
        fused = [torch.relu(y0)]
        for i in range(1, len(self.ups)):
            y = self._up_sum(i, out)
            y = out[i] if y is None else y + out[i]
            for j in range(i - 1, 0, -1):
                y = y + self.downs[i][j](out[j])
            fused.append(torch.relu(y + self.downs[i][0](y0)))
        return fused


def fold_fuse_layers(module):
    """Replace every NAIVE multi-branch ``LiteHRModule`` (BN folded; run after :func:`fold_channel_shuffles`)
    by :class:`_FoldedFuseModule`; in place.

    Returns:
        int: number of modules rewritten.
    """
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if (_is(child, 'LiteHRModule') and child.module_type.upper() == 'NAIVE' and child.with_fuse
                    and child.num_branches > 1):
                setattr(parent, name, _FoldedFuseModule(child))
                count += 1
    return count


def _conv_relu(conv, rows):
    """A copy of ``conv`` (bias required) keeping only output channels ``rows``, followed by ReLU."""
    out = nn.Conv2d(conv.in_channels, len(rows), conv.kernel_size, conv.stride, conv.padding, bias=True)
    out.weight.data = conv.weight.detach()[rows].clone()
    out.bias.data = conv.bias.detach()[rows].clone()
    return nn.Sequential(out, nn.ReLU(inplace=True))


class _FoldedStem(nn.Module):
    """LiteHRNet's ``Stem`` (BN folded) with no Split and no channel shuffle (see :func:`fold_stem`)."""

    def __init__(self, stem):
        super().__init__()
        conv = stem.conv1.conv
        half = conv.out_channels // 2
        # two convs on the image instead of one conv + chunk: same multiply-adds, no Split/reorder of the
        # largest feature map in the network
        self.conv1a = _conv_relu(conv, list(range(half)))
        self.conv1b = _conv_relu(conv, list(range(half, 2 * half)))
        self.branch1 = stem.branch1
        self.expand_conv, self.depthwise_conv, self.linear_conv = (stem.expand_conv, stem.depthwise_conv,
                                                                   stem.linear_conv)

    def forward(self, x):
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(self.conv1b(x))))
        return torch.cat((self.branch1(self.conv1a(x)), x2), dim=1)


def fold_stem(backbone):
    """Drop the stem's Split and closing channel shuffle (BN folded first); exact, in place.

    The shuffle is a channel permutation and every consumer of the stem output (``transition0``) starts with a
    depthwise conv followed by a 1x1 conv, so permuting the depthwise channels and the 1x1 conv's input
    columns absorbs it.

    Returns:
        bool: whether the stem was rewritten (False when the layout is not the expected one).
    """
    stem = getattr(backbone, 'stem', None)
    trans = getattr(backbone, 'transition0', None)
    if not _is(stem, 'Stem') or trans is None:
        return False
    if any(isinstance(m, nn.BatchNorm2d) for m in list(stem.modules()) + list(trans.modules())):
        raise ValueError('fold_stem needs BatchNorm folded first (fold_batchnorm)')
    firsts = []
    for t in trans:
        convs = [m for m in (t.modules() if t is not None else ()) if isinstance(m, nn.Conv2d)]
        if len(convs) < 2 or convs[0].groups != convs[0].in_channels or convs[1].kernel_size != (1, 1):
            return False
        firsts.append(convs[:2])
    c = stem.conv1.conv.out_channels
    if c % 2 or any(dw.in_channels != c for dw, _ in firsts):
        return False
    # consumer channel j reads unshuffled channel perm[j]; index by the inverse to read the unshuffled tensor
    inv = torch.argsort(torch.tensor([(j % 2) * (c // 2) + j // 2 for j in range(c)]))
    for dw, pw in firsts:
        dw.weight.data = dw.weight.data[inv].contiguous()
        dw.bias.data = dw.bias.data[inv].contiguous()
        pw.weight.data = pw.weight.data[:, inv].contiguous()
    backbone.stem = _FoldedStem(stem)
    return True


#: how :func:`fold_for_inference` rewrites the shuffle units for each runtime (measured, docs/inference.md):
#: ``fold_channel_shuffles`` keyword arguments
FOLD_PLANS = {
    'torch': dict(),
    'onnxruntime': dict(),
    # OpenVINO runs block-aligned Split/Concat/ShuffleChannels well and 2-group convs with 20/40-channel groups
    # fast: 3-5 % faster than the onnxruntime plan on OpenVINO
    'openvino': dict(unaligned_only=True, group_conv1=True),
}


def fold_for_inference(net, shuffles=True, runtime='onnxruntime'):
    """Every exact rewrite for inference, in place, in the order they need: BatchNorm, then (``shuffles``) the
    channel-shuffle units, the fuse-layer sums and the stem.

    Args:
        net (HeatmapNet): eval-mode network.
        shuffles (bool): False keeps the original shuffle/fuse/stem structure (BN folding only).
        runtime (str): the runtime the graph is for, a key of :data:`FOLD_PLANS`.

    Returns:
        HeatmapNet: ``net``.
    """
    if runtime not in FOLD_PLANS:
        raise ValueError(f'unknown runtime {runtime!r}; choose one of {", ".join(FOLD_PLANS)}')
    fold_batchnorm(net)
    if shuffles:
        fold_channel_shuffles(net, **FOLD_PLANS[runtime])
        fold_fuse_layers(net)
        fold_stem(net.backbone)
    return net
