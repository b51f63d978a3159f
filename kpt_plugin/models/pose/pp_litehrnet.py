"""PaddleDetection's LiteHRNet presets on top of MMPose's LiteHRNet.

MMPose 1.3.2's ``LiteHRNet`` with Paddle's stem (32/32, expand 1), ``with_fuse`` and the
``IterativeHead`` is the same function as ``ppdet.modeling.backbones.lite_hrnet.LiteHRNet`` (same module
tree, same in-place fuse aliasing, bilinear ``align_corners=True``), so it is reused, not rewritten;
only Paddle's preset table is added. Parity is proven by ``tests/test_models`` against ppdet's golden
heatmaps. (The predictor runs :mod:`kpt_plugin.inference.litehrnet`, an inference-only plain-torch twin of the
``wider_naive`` preset that imports no MMPose; a test checks it against this model bit for bit.)
"""
import copy

from mmpose.models.backbones import LiteHRNet
from mmpose.registry import MODELS

_CHANNELS_40 = ((40, 80), (40, 80, 160), (40, 80, 160, 320))

#: ``ppdet`` ``LiteHRNet.module_configs``; ``wider_naive`` is PP-TinyPose's backbone.
PADDLE_LITEHRNET_ARCHS = {
    'lite_18': dict(num_modules=(2, 4, 2), module_type=('LITE', ) * 3, reduce_ratios=(8, 8, 8),
                    num_channels=_CHANNELS_40),
    'lite_30': dict(num_modules=(3, 8, 3), module_type=('LITE', ) * 3, reduce_ratios=(8, 8, 8),
                    num_channels=_CHANNELS_40),
    'naive': dict(num_modules=(2, 4, 2), module_type=('NAIVE', ) * 3, reduce_ratios=(1, 1, 1),
                  num_channels=((30, 60), (30, 60, 120), (30, 60, 120, 240))),
    'wider_naive': dict(num_modules=(2, 4, 2), module_type=('NAIVE', ) * 3, reduce_ratios=(1, 1, 1),
                        num_channels=_CHANNELS_40),
}


def paddle_litehrnet_extra(arch):
    """MMPose ``LiteHRNet`` ``extra`` dict for one of Paddle's presets."""
    if arch not in PADDLE_LITEHRNET_ARCHS:
        raise KeyError(f'unknown LiteHRNet arch {arch!r}; choose one of {sorted(PADDLE_LITEHRNET_ARCHS)}')
    spec = copy.deepcopy(PADDLE_LITEHRNET_ARCHS[arch])
    spec.update(num_branches=(2, 3, 4), num_blocks=(2, 2, 2), with_fuse=(True, True, True))
    return dict(stem=dict(stem_channels=32, out_channels=32, expand_ratio=1), num_stages=3,
                stages_spec=spec, with_head=True)


@MODELS.register_module()
class PPLiteHRNet(LiteHRNet):
    """PaddleDetection's LiteHRNet (PP-TinyPose backbone) by preset name.

    Args:
        arch (str): one of ``lite_18``, ``lite_30``, ``naive``, ``wider_naive`` (PP-TinyPose).
        **kwargs: forwarded to :class:`mmpose.models.backbones.LiteHRNet` (``norm_cfg``, ``norm_eval``,
            ``with_cp``, ``init_cfg``, ``in_channels``).

    The output is a 1-tuple with the stride-4 feature map (``num_channels[0][0]`` channels).
    """

    def __init__(self, arch='wider_naive', **kwargs):
        self.arch = arch
        super().__init__(extra=paddle_litehrnet_extra(arch), **kwargs)

    def train(self, mode=True):
        """As MMPose's, but returns ``self`` like every ``nn.Module`` (so ``net.eval()`` chains)."""
        super().train(mode)
        return self
