"""PP-TinyPose's network in plain PyTorch, for inference without importing MMPose, mmengine or mmcv.

Same module tree and tensor names as the MMPose model our configs build (``TopdownPoseEstimator`` with
``PPLiteHRNet(arch='wider_naive')`` and a 1x1 ``HeatmapHead``), so a converted checkpoint loads into either strictly,
and the same operations in the same order (including the fuse step's in-place sums), so both give the same
heatmaps bit for bit (``tests/test_inference/test_litehrnet.py`` checks both against MMPose's model). Importing MMPose
costs a fresh process ~3 s more than importing torch (docs/inference.md, cold start): the predictor builds this
network for the released configs, and MMPose's model for any other config. Only the NAIVE module type (PP-TinyPose)
is written here; :mod:`kpt_plugin.models.pose` registers the full backbone into MMPose.
"""
import torch
from torch import nn

__all__ = ['ConvModule', 'ShuffleUnit', 'LiteHRModule', 'Stem', 'PlainLiteHRNet', 'PlainPoseModel',
           'channel_shuffle']


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle: (N, g * c, H, W) viewed as (N, g, c, H, W), transposed to (N, c, g, H, W)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ConvModule(nn.Module):
    """conv -> BatchNorm -> optional ReLU, with mmcv ``ConvModule``'s attribute names (``conv``, ``bn``,
    ``activate``) and the ``with_norm`` / ``norm`` / ``norm_name`` / ``order`` that :mod:`.folding` reads."""

    norm_name = 'bn'
    order = ('conv', 'norm', 'act')

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, groups=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.with_norm = True
        self.with_activation = relu
        if relu:
            self.activate = nn.ReLU(inplace=True)

    @property
    def norm(self):
        return getattr(self, self.norm_name)

    def forward(self, x):
        x = self.norm(self.conv(x))
        return self.activate(x) if self.with_activation else x


def _dw_pw(cin, cout, stride, relu):
    """depthwise 3x3 conv, BN, 1x1 conv, BN (+ ReLU): the transitions' and fuse layers' down-sampling step."""
    layers = [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
              nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=relu == 'inplace')) if relu else nn.Sequential(*layers)


class Stem(nn.Module):
    """3x3 stride-2 conv, then a stride-2 ShuffleNet block on its two halves (expand ratio 1)."""

    def __init__(self, cin, stem_channels, out_channels):
        super().__init__()
        if stem_channels != out_channels:
            raise ValueError('the plain LiteHRNet stem needs stem_channels == out_channels (PP-TinyPose: 32, 32)')
        half = stem_channels // 2
        self.conv1 = ConvModule(cin, stem_channels, 3, 2, 1)
        self.branch1 = nn.Sequential(ConvModule(half, half, 3, 2, 1, groups=half, relu=False),
                                     ConvModule(half, out_channels - half, 1))
        self.expand_conv = ConvModule(half, stem_channels, 1)
        self.depthwise_conv = ConvModule(stem_channels, stem_channels, 3, 2, 1, groups=stem_channels, relu=False)
        self.linear_conv = ConvModule(stem_channels, half, 1)

    def forward(self, x):
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class ShuffleUnit(nn.Module):
    """Stride-1 ShuffleNet-v2 unit: half the channels pass, the other half go 1x1 -> depthwise 3x3 -> 1x1."""

    stride = 1  # read by the shuffle fold, as on MMPose's unit

    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(ConvModule(half, half, 1), ConvModule(half, half, 3, 1, 1, groups=half,
                                                                            relu=False), ConvModule(half, half, 1))

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch2(x2)), dim=1), 2)


class LiteHRModule(nn.Module):
    """A NAIVE multi-branch module: ShuffleUnits per branch, then every branch fused into every output."""

    # read by the fuse fold (:func:`.folding.fold_fuse_layers`), as on MMPose's module
    module_type = 'NAIVE'
    with_fuse = True

    def __init__(self, channels, num_blocks):
        super().__init__()
        self.num_branches = nb = len(channels)
        self.layers = nn.ModuleList(nn.Sequential(*(ShuffleUnit(c) for _ in range(num_blocks))) for c in channels)
        fuse = []
        for i in range(nb):
            row = []
            for j in range(nb):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                             nn.BatchNorm2d(channels[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode='nearest')))
                elif j == i:
                    row.append(None)
                else:
                    row.append(nn.Sequential(*(
                        _dw_pw(channels[j], channels[i], 2, relu=False) if k == i - j - 1
                        else _dw_pw(channels[j], channels[j], 2, relu='inplace') for k in range(i - j))))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = [self.layers[i](x[i]) for i in range(self.num_branches)]
        fused = []
        for i in range(self.num_branches):
            # as MMPose and ppdet: y aliases out[0] when i == 0, so the in-place sums double branch 0 and
            # change out[0], which the later outputs then read (the checkpoints were trained with this)
            y = out[0] if i == 0 else self.fuse_layers[i][0](out[0])
            for j in range(self.num_branches):
                y += out[j] if i == j else self.fuse_layers[i][j](out[j])
            fused.append(self.relu(y))
        return fused


class IterativeHead(nn.Module):
    """From the coarsest branch down: add the upsampled previous output, depthwise-separable conv."""

    def __init__(self, channels):
        super().__init__()
        rev = list(channels)[::-1]
        outs = rev[1:] + rev[-1:]
        self.projects = nn.ModuleList(_DepthwiseSeparable(c, o) for c, o in zip(rev, outs))

    def forward(self, x):
        y, last = [], None
        for i, s in enumerate(x[::-1]):
            if last is not None:
                s = s + nn.functional.interpolate(last, size=s.shape[-2:], mode='bilinear', align_corners=True)
            last = self.projects[i](s)
            y.append(last)
        return y[::-1]


class _DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, 3, 1, 1, groups=cin, relu=False)
        self.pointwise_conv = ConvModule(cin, cout, 1)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class PlainLiteHRNet(nn.Module):
    """LiteHRNet with NAIVE modules, fuse layers and the iterative head; returns a 1-tuple (stride-4 features).

    Args:
        num_modules, num_channels: per stage (PP-TinyPose: ``(2, 4, 2)`` and ``((40, 80), (40, 80, 160),
            (40, 80, 160, 320))``); every module has 2 ShuffleUnits per branch.
    """

    def __init__(self, num_modules=(2, 4, 2), num_channels=((40, 80), (40, 80, 160), (40, 80, 160, 320)),
                 num_blocks=2, in_channels=3, stem_channels=32):
        super().__init__()
        self.stem = Stem(in_channels, stem_channels, stem_channels)
        self.num_stages = len(num_modules)
        prev = [stem_channels]
        for s, (n, chans) in enumerate(zip(num_modules, num_channels)):
            setattr(self, f'transition{s}', self._transition(prev, list(chans)))
            setattr(self, f'stage{s}', nn.Sequential(*(LiteHRModule(chans, num_blocks) for _ in range(n))))
            prev = list(chans)
        self.head_layer = IterativeHead(prev)

    @staticmethod
    def _transition(prev, cur):
        layers = []
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(None if c == prev[i] else _dw_pw(prev[i], c, 1, relu=True))
            else:
                last = prev[-1]
                n = i + 1 - len(prev)
                layers.append(nn.Sequential(*(_dw_pw(last, c if k == n - 1 else last, 2, relu=True)
                                              for k in range(n))))
        return nn.ModuleList(layers)

    def forward(self, x):
        ys = [self.stem(x)]
        for s in range(self.num_stages):
            trans = getattr(self, f'transition{s}')
            xs = [ys[min(j, len(ys) - 1)] if trans[j] is None else trans[j](ys[min(j, len(ys) - 1)])
                  for j in range(len(trans))]
            ys = getattr(self, f'stage{s}')(xs)
        return (self.head_layer(ys)[0], )


class _Head(nn.Module):
    def __init__(self, cin, num_joints):
        super().__init__()
        self.final_layer = nn.Conv2d(cin, num_joints, 1)


class PlainPoseModel(nn.Module):
    """``backbone`` + ``head.final_layer``: the part of MMPose's estimator inference runs (:class:`.nets.HeatmapNet`).

    Attributes:
        input_size: network input ``(w, h)``.
    """

    def __init__(self, input_size, num_joints=17):
        super().__init__()
        self.input_size = tuple(input_size)
        self.backbone = PlainLiteHRNet()
        self.head = _Head(40, num_joints)
