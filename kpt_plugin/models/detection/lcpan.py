"""LCPAN neck of PicoDet (``ppdet.modeling.necks.lc_pan``), names as ppdet's."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .lcnet import BN_EPS, ConvBNLayer, DepthwiseSeparable, activation


class DPModule(nn.Module):
    """ppdet ``csp_pan.DPModule``: 'depthwise' conv + BN + act, pointwise conv + BN (+ act).

    The first conv has ``groups=out_channels``: depthwise when ``in == out``, a full conv when ``out == 1``
    (PicoHeadV2's ``cls_align``).
    """

    def __init__(self, in_channels=96, out_channels=96, kernel_size=3, stride=1, act='leaky_relu',
                 use_act_in_out=True):
        super().__init__()
        self.dwconv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                                groups=out_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.pwconv = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act1 = activation(act)
        self.act2 = activation(act if use_act_in_out else None)

    def forward(self, x):
        x = self.act1(self.bn1(self.dwconv(x)))
        return self.act2(self.bn2(self.pwconv(x)))


class ChannelT(nn.Module):
    """ppdet ``Channel_T``: one 1x1 ConvBN-act per input level to ``out_channels``."""

    def __init__(self, in_channels, out_channels=96, act='leaky_relu'):
        super().__init__()
        self.convs = nn.ModuleList(ConvBNLayer(c, out_channels, 1, act=act) for c in in_channels)

    def forward(self, x):
        return [conv(f) for conv, f in zip(self.convs, x)]


class LCPAN(nn.Module):
    """Path aggregation network with LCNet blocks (ppdet ``LCPAN``).

    Args:
        in_channels (Sequence[int]): channels of the backbone levels (LCNet x0.75: 96, 192, 384).
        out_channels (int): channels of every output level (PicoDet-S: 96).
        kernel_size (int): kernel of the depthwise convs.
        num_features (int): 3, or 4 to add a stride-64 level from the top input and the top output.
        use_depthwise (bool): down-sample with :class:`DPModule` (True) or a plain ConvBN.
        act (str): activation of the channel transform and down-samplers (the LCNet blocks use hard-swish).

    Returns a tuple of ``num_features`` maps, strides 8, 16, 32 (, 64).
    """

    def __init__(self, in_channels, out_channels, kernel_size=5, num_features=3, use_depthwise=True,
                 act='hard_swish'):
        super().__init__()
        num_levels = len(in_channels)
        self.num_levels = num_levels
        self.num_features = num_features
        self.conv_t = ChannelT(in_channels, out_channels, act=act)

        def down():
            if use_depthwise:
                return DPModule(out_channels, out_channels, kernel_size, stride=2, act=act)
            return ConvBNLayer(out_channels, out_channels, kernel_size, stride=2, act=act)

        def block():  # ppdet NET_CONFIG block1 == block2: 2C -> 2C -> C, stride 1, no SE
            return nn.Sequential(DepthwiseSeparable(2 * out_channels, 2 * out_channels, 1, dw_size=kernel_size),
                                 DepthwiseSeparable(2 * out_channels, out_channels, 1, dw_size=kernel_size))

        if num_features == 4:
            self.first_top_conv = down()
            self.second_top_conv = down()
        self.top_down_blocks = nn.ModuleList(block() for _ in range(num_levels - 1))
        self.downsamples = nn.ModuleList(down() for _ in range(num_levels - 1))
        self.bottom_up_blocks = nn.ModuleList(block() for _ in range(num_levels - 1))

    def forward(self, inputs):
        assert len(inputs) == self.num_levels
        inputs = self.conv_t(inputs)
        inner_outs = [inputs[-1]]
        for idx in range(self.num_levels - 1, 0, -1):
            up = F.interpolate(inner_outs[0], scale_factor=2, mode='nearest')
            block = self.top_down_blocks[self.num_levels - 1 - idx]
            inner_outs.insert(0, block(torch.cat([up, inputs[idx - 1]], 1)))
        outs = [inner_outs[0]]
        for idx in range(self.num_levels - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner_outs[idx + 1]], 1)))
        if self.num_features == 4:
            outs.append(self.first_top_conv(inputs[-1]) + self.second_top_conv(outs[-1]))
        return tuple(outs)
