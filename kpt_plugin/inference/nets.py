"""The networks inference runs: the model (plain torch or MMPose's) reduced to image -> heatmaps, and the flip test
fused into the batch.

PP-TinyPose's flip test (ppdet ``TopDownHRNet``): run the horizontally flipped image, flip the heatmaps back,
swap left/right joints, shift them right by one column (column 0 kept) and average with the plain pass.
:class:`FlipFusedNet` does both passes in ONE forward of a 2N batch.
"""
import os
import os.path as osp

import torch
from torch import nn

from weight_convert.io import load_checkpoint, strip_module_prefix

from ..errors import WeightsError

__all__ = ['COCO_FLIP_INDICES', 'HeatmapNet', 'FlipFusedNet', 'build_estimator', 'build_pose_model',
           'build_inference_model', 'released_arch', 'input_size_of', 'checked_state_dict']

#: COCO-17 joint index after a horizontal flip (left <-> right)
COCO_FLIP_INDICES = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


def build_pose_model(config, checkpoint, device='cpu'):
    """Build the MMPose ``TopdownPoseEstimator`` of ``config`` and load ``checkpoint`` strictly.

    Raises:
        WeightsError: the file is not a checkpoint, or its tensors do not fit the model (names the file).
    """
    from mmengine.runner import load_state_dict

    model = build_estimator(config)
    load_state_dict(model, checked_state_dict(checkpoint, model, config), strict=True)
    return model.to(device).eval()


def released_arch(config):
    """The PP-TinyPose :class:`~weight_convert.archs.Arch` whose released config is the file ``config``, else None."""
    from weight_convert.archs import ARCHS

    from ..zoo.registry import get_config_path

    if not isinstance(config, (str, os.PathLike)):
        return None
    path = osp.realpath(config)
    return next((a for a in ARCHS.values()
                 if a.family == 'pp_tinypose' and osp.realpath(get_config_path(a.name)) == path), None)


def build_inference_model(config, checkpoint, device='cpu'):
    """The network the predictor runs, with ``checkpoint`` loaded strictly: for a released config the plain-torch
    :class:`~.litehrnet.PlainPoseModel` (same tensors, same heatmaps, no MMPose import), else
    :func:`build_pose_model`'s MMPose estimator. :func:`input_size_of` tells either's input size."""
    arch = released_arch(config)
    if arch is None:
        return build_pose_model(config, checkpoint, device)
    from .litehrnet import PlainPoseModel
    model = PlainPoseModel(arch.input_size)
    model.load_state_dict(checked_state_dict(checkpoint, model, config), strict=True)
    return model.to(device).eval()


def input_size_of(model):
    """Network input ``(w, h)`` of a :func:`build_inference_model` result."""
    size = getattr(model, 'input_size', None)
    return tuple(size if size is not None else model.cfg.codec['input_size'])


def checked_state_dict(checkpoint, model, config, kind='PP-TinyPose'):
    """The state dict in ``checkpoint`` for ``model.load_state_dict(..., strict=True)``: checked against the model's
    tensors (one clear error names the file), BN batch counters the file lacks taken from the model.

    Args:
        kind (str): the model family the error messages name (``PP-TinyPose``, ``PicoDet``).
    """
    try:
        ckpt = load_checkpoint(checkpoint, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise WeightsError(f'{checkpoint}: not a readable PyTorch checkpoint ({type(e).__name__}: {e}); pass '
                           'a .pth written by `kpt-plugin convert`, or the original Paddle weights') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f'{checkpoint}: holds no state dict of tensors; is it a model checkpoint?')
    state = strip_module_prefix(state)
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    # one check over all tensors (one per tensor cost ~20 ms of each build); the slow scan only names the bad one
    if floats and not torch.isfinite(torch.cat([v.reshape(-1) for v in floats.values()])).all():
        bad = next(k for k, v in floats.items() if not torch.isfinite(v).all())
        raise WeightsError(f'{checkpoint}: tensor {bad} holds NaN or inf values; the file is corrupt - convert '
                           'the original weights again')
    ref = model.state_dict()
    missing = [k for k in ref if k not in state and not k.endswith('num_batches_tracked')]
    unknown = [k for k in state if k not in ref]
    shapes = [k for k in state if k in ref and state[k].shape != ref[k].shape]
    if missing or unknown or shapes:
        name = osp.basename(config) if isinstance(config, (str, os.PathLike)) else 'the config'
        raise WeightsError(
            f'{checkpoint}: weights do not fit {name}: {len(missing)} missing, {len(unknown)} '
            f'unknown, {len(shapes)} mis-shaped tensors (e.g. {(missing + unknown + shapes)[:3]}); is this a '
            f'{kind} checkpoint?')
    return {k: state.get(k, v) for k, v in ref.items()}


def build_estimator(config):
    """What MMPose's ``init_model(config, checkpoint=None, device='cpu')`` returns (same config handling, estimator,
    ``dataset_meta`` and ``cfg``), without importing ``mmpose.apis``: its inferencers import ``pkg_resources``,
    ~0.08 s of a model build that takes ~0.5 s."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.models import build_pose_estimator
    from mmpose.registry import DATASETS

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg = None
    scope = cfg.get('default_scope', 'mmpose')
    if scope is not None:
        init_default_scope(scope)
    model = build_pose_estimator(cfg.model)
    dataset = cfg.get('train_dataloader', {}).get('dataset', {})
    if 'metainfo' in dataset:
        meta = dataset.metainfo
    else:
        import mmpose.datasets.datasets  # noqa: F401 - registers the dataset classes
        meta = (dataset.type if isinstance(dataset.type, type) else DATASETS.get(dataset.type)).METAINFO
    model.dataset_meta = parse_pose_metainfo(meta)
    model.cfg = cfg
    return model.eval()


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
