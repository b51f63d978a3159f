"""PP-LCNet backbone as PaddleDetection builds it for PicoDet (``ppdet.modeling.backbones.lcnet``).

Module and parameter names mirror ppdet's (``conv1.conv``, ``blocks5.2.dw_conv.bn`` ...), so a ppdet state dict
maps onto this module by BatchNorm statistic names alone (see ``weight_convert/families/picodet.py``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

#: Paddle ``F.hardsigmoid`` defaults (the SE gate). The fp16 OpenVINO IR stores the slope as 0.1666259765625;
#: ppdet, and therefore this port, use Paddle's 0.1666667 (1/6 to 7 digits).
HARDSIGMOID_SLOPE = 0.1666667
HARDSIGMOID_OFFSET = 0.5
#: BatchNorm epsilon of Paddle's ``nn.BatchNorm2D`` (every BN of PicoDet)
BN_EPS = 1e-5

#: per stage: (kernel, in channels, out channels, stride, use SE) at scale 1.0 (ppdet ``NET_CONFIG``)
NET_CONFIG = {
    'blocks2': [(3, 16, 32, 1, False)],
    'blocks3': [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    'blocks4': [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    'blocks5': [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 5,
    'blocks6': [(5, 256, 512, 2, True), (5, 512, 512, 1, True)],
}


def make_divisible(v, divisor=8, min_value=None):
    """Round a scaled channel count to a multiple of ``divisor`` (never more than 10% down), as ppdet."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def hard_sigmoid(x, slope=HARDSIGMOID_SLOPE, offset=HARDSIGMOID_OFFSET):
    """Paddle's ``F.hardsigmoid``: ``clip(slope * x + offset, 0, 1)``."""
    return torch.clamp(x * slope + offset, 0., 1.)


def activation(name):
    """The activations ppdet's PicoDet modules use, by ppdet's name (``None``: identity)."""
    if name is None:
        return nn.Identity()
    if name in ('hard_swish', 'hardswish'):
        return nn.Hardswish()
    if name == 'relu6':
        return nn.ReLU6()
    if name == 'leaky_relu':
        return nn.LeakyReLU(0.01)  # Paddle's default negative slope, as PyTorch's
    raise ValueError(f'unsupported activation {name!r}; use hard_swish, relu6, leaky_relu or None')


class ConvBNLayer(nn.Module):
    """Conv (no bias, 'same' padding) + BatchNorm + activation; ppdet names ``conv`` / ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, act='hard_swish'):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Module):
    """LCNet squeeze-excitation: avg-pool, 1x1 conv, ReLU, 1x1 conv, Paddle hard-sigmoid gate."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        w = F.adaptive_avg_pool2d(x, 1)
        w = hard_sigmoid(self.conv2(F.relu(self.conv1(w))))
        return x * w


class DepthwiseSeparable(nn.Module):
    """Depthwise ConvBN-act, optional SE, pointwise ConvBN-act (LCNet's block, also LCPAN's)."""

    def __init__(self, in_channels, out_channels, stride, dw_size=3, use_se=False, act='hard_swish'):
        super().__init__()
        self.dw_conv = ConvBNLayer(in_channels, in_channels, dw_size, stride, groups=in_channels, act=act)
        self.se = SEModule(in_channels) if use_se else None
        self.pw_conv = ConvBNLayer(in_channels, out_channels, 1, act=act)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


class LCNet(nn.Module):
    """PP-LCNet (ppdet ``LCNet``).

    Args:
        scale (float): width multiplier (PicoDet-S LCNet: 0.75).
        feature_maps (Sequence[int]): ppdet's output selection: stage ``i`` (2..5 = ``blocks3``..``blocks6``,
            strides 4..32) is returned when ``i`` is listed. PicoDet uses ``(3, 4, 5)`` (strides 8, 16, 32).
        act (str): activation of every ConvBN layer.

    Returns a tuple of the selected feature maps, shallow to deep.
    """

    def __init__(self, scale=1.0, feature_maps=(3, 4, 5), act='hard_swish'):
        super().__init__()
        self.scale = scale
        self.feature_maps = tuple(feature_maps)
        self.conv1 = ConvBNLayer(3, make_divisible(16 * scale), 3, stride=2, act=act)
        out_channels = []
        for name, spec in NET_CONFIG.items():
            blocks = [DepthwiseSeparable(make_divisible(cin * scale), make_divisible(cout * scale), stride=s,
                                         dw_size=k, use_se=se, act=act) for k, cin, cout, s, se in spec]
            self.add_module(name, nn.Sequential(*blocks))
            if name != 'blocks2':
                out_channels.append(make_divisible(spec[-1][2] * scale))
        self.out_channels = [c for i, c in enumerate(out_channels) if i + 2 in self.feature_maps]

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        outs = []
        for i, name in enumerate(('blocks3', 'blocks4', 'blocks5', 'blocks6')):
            x = getattr(self, name)(x)
            if i + 2 in self.feature_maps:
                outs.append(x)
        return tuple(outs)
