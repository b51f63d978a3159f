"""PicoHeadV2 (``ppdet.modeling.heads.pico_head``) with its PicoFeat tower, DFL decoding and ppdet's NMS.

Parameter names mirror ppdet's (``conv_feat.cls_conv_dw0.1.conv``, ``head_cls_list.2``, ``cls_align.3.bn1`` ...).
The mmdet-facing entry points are :meth:`PicoHeadV2.predict` / :meth:`PicoHeadV2.predict_by_feat`; the ppdet
functions they chain are :meth:`~PicoHeadV2.forward` (scores + DFL logits per level), :meth:`~PicoHeadV2.decode`
(ppdet ``forward_eval``: boxes in network-input pixels before NMS) and :meth:`~PicoHeadV2.post_process`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lcnet import BN_EPS, activation
from .lcpan import DPModule
from .nms import multiclass_nms

#: inside ppdet's ``sqrt(sigmoid(cls) * sigmoid(quality) + eps)``; the fp16 OpenVINO IR lost it, which makes
#: the lowest scores 0 instead of sqrt(1e-9) = 3.2e-5
SCORE_EPS = 1e-9


class ConvNormLayer(nn.Module):
    """ppdet ``layers.ConvNormLayer`` as PicoFeat uses it: conv (no bias, 'same' padding) + BN, no activation."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                              groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x):
        return self.norm(self.conv(x))


class PicoSE(nn.Module):
    """``conv(feat * sigmoid(fc(avg_feat)))`` (ppdet ``PicoSE``)."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.conv = ConvNormLayer(channels, channels, 1)

    def forward(self, feat, avg_feat):
        return self.conv(feat * torch.sigmoid(self.fc(avg_feat)))


class PicoFeat(nn.Module):
    """Per-level depthwise/pointwise conv tower (ppdet ``PicoFeat``).

    Args:
        feat_in (int): input channels.
        feat_out (int): tower channels.
        num_fpn_stride (int): number of levels (one tower each).
        num_convs (int): depthwise + pointwise pairs per tower.
        share_cls_reg (bool): one tower for classification and regression.
        act (str): activation after every conv.
        use_se (bool): add :class:`PicoSE` (needs ``share_cls_reg``); its output feeds both 1x1 predictors.
    """

    def __init__(self, feat_in=256, feat_out=96, num_fpn_stride=3, num_convs=2, share_cls_reg=False,
                 act='hard_swish', use_se=False):
        super().__init__()
        if use_se and not share_cls_reg:
            raise ValueError('PicoFeat: use_se=True needs share_cls_reg=True (as ppdet)')
        self.num_fpn_stride = num_fpn_stride
        self.num_convs = num_convs
        self.share_cls_reg = share_cls_reg
        self.use_se = use_se
        self.act = activation(act)
        branches = ('cls', ) if share_cls_reg else ('cls', 'reg')
        for stage in range(num_fpn_stride):
            for branch in branches:
                # ppdet registers 'cls_conv_dw{stage}.{i}'; a ModuleList per stage gives the same names
                self.add_module(f'{branch}_conv_dw{stage}', nn.ModuleList(
                    ConvNormLayer(feat_in if i == 0 else feat_out, feat_out, 5, groups=feat_out)
                    for i in range(num_convs)))
                self.add_module(f'{branch}_conv_pw{stage}', nn.ModuleList(
                    ConvNormLayer(feat_in if i == 0 else feat_out, feat_out, 1) for i in range(num_convs)))
        self.se = nn.ModuleList(PicoSE(feat_out) for _ in range(num_fpn_stride)) if use_se else None

    def forward(self, x, stage):
        """Returns ``(cls_feat, reg_feat)``; with SE, ``reg_feat`` is the SE output (ppdet's ``se_feat``)."""
        cls_feat = reg_feat = x
        for i in range(self.num_convs):
            for kind in ('dw', 'pw'):
                cls_feat = self.act(getattr(self, f'cls_conv_{kind}{stage}')[i](cls_feat))
                reg_feat = cls_feat
                if not self.share_cls_reg:  # as ppdet: each reg conv reads the cls feature of its own step
                    reg_feat = self.act(getattr(self, f'reg_conv_{kind}{stage}')[i](reg_feat))
        if self.use_se:
            reg_feat = self.act(self.se[stage](cls_feat, F.adaptive_avg_pool2d(cls_feat, 1)))
        return cls_feat, reg_feat


class Integral(nn.Module):
    """Expected value of each side's softmax distribution over ``0..reg_max`` (ppdet ``Integral``)."""

    def __init__(self, reg_max=16):
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer('project', torch.linspace(0, reg_max, reg_max + 1))

    def forward(self, x):
        """(..., 4 * (reg_max + 1)) logits -> (..., 4) distances in stride units."""
        prob = F.softmax(x.reshape(-1, self.reg_max + 1), dim=1)
        return (prob @ self.project).reshape(*x.shape[:-1], 4)


class PicoHeadV2(nn.Module):
    """PP-PicoDet's head (ppdet ``PicoHeadV2``), inference only.

    Args:
        conv_feat (dict): :class:`PicoFeat` arguments.
        num_classes (int): classes (pedestrian: 1).
        fpn_stride (Sequence[int]): stride of each input level.
        prior_prob (float): initial foreground probability of the class predictors (bias init only).
        use_align_head (bool): fuse the class score with the ``cls_align`` quality branch
            (``sqrt(sigmoid(cls) * sigmoid(quality) + 1e-9)``); else ``sigmoid(cls)``.
        reg_max (int): DFL bins per side minus one.
        feat_in_chan (int): channels fed to the predictors.
        cell_offset (float): anchor point inside each cell (0.5: the cell centre).
        act (str): activation of ``cls_align``.
        train_cfg (dict): unused (training is not ported).
        test_cfg (dict): ``nms``: :func:`~kpt_plugin.models.detection.nms.multiclass_nms` arguments;
            ``clip_to_image``: clip the final boxes to the image (ppdet does not; see :meth:`predict_by_feat`).
    """

    def __init__(self, conv_feat, num_classes=80, fpn_stride=(8, 16, 32), prior_prob=0.01, use_align_head=True,
                 reg_max=16, feat_in_chan=96, cell_offset=0., act='hard_swish', train_cfg=None, test_cfg=None):
        super().__init__()
        self.num_classes = num_classes
        self.fpn_stride = tuple(fpn_stride)
        self.use_align_head = use_align_head
        self.reg_max = reg_max
        self.cell_offset = cell_offset
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})
        conv_feat = dict(conv_feat)
        conv_feat.pop('type', None)
        conv_feat.setdefault('num_fpn_stride', len(self.fpn_stride))
        self.conv_feat = PicoFeat(**conv_feat)
        self.distribution_project = Integral(reg_max)  # registered where ppdet's GFLHead does
        self.head_cls_list = nn.ModuleList(nn.Conv2d(feat_in_chan, num_classes, 1) for _ in self.fpn_stride)
        self.head_reg_list = nn.ModuleList(nn.Conv2d(feat_in_chan, 4 * (reg_max + 1), 1) for _ in self.fpn_stride)
        self.cls_align = nn.ModuleList(DPModule(feat_in_chan, 1, 5, act=act, use_act_in_out=False)
                                       for _ in self.fpn_stride) if use_align_head else None
        for conv in self.head_cls_list:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, -math.log((1 - prior_prob) / prior_prob))
        for conv in self.head_reg_list:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, feats):
        """Per level: class scores (B, C, H, W) in [0, 1] (fused) and DFL logits (B, 4 * (reg_max + 1), H, W)."""
        cls_scores, reg_dists = [], []
        for i, feat in enumerate(feats):
            cls_feat, se_feat = self.conv_feat(feat, i)
            score = torch.sigmoid(self.head_cls_list[i](se_feat))
            if self.use_align_head:
                score = torch.sqrt(score * torch.sigmoid(self.cls_align[i](cls_feat)) + SCORE_EPS)
            cls_scores.append(score)
            reg_dists.append(self.head_reg_list[i](se_feat))
        return cls_scores, reg_dists

    def anchor_points(self, featmap_sizes, device=None):
        """Cell points (x, y) in stride units (N, 2) and their strides (N, 1), levels concatenated row-major."""
        points, strides = [], []
        for (h, w), stride in zip(featmap_sizes, self.fpn_stride):
            ys = torch.arange(h, device=device, dtype=torch.float32) + self.cell_offset
            xs = torch.arange(w, device=device, dtype=torch.float32) + self.cell_offset
            yy, xx = torch.meshgrid(ys, xs, indexing='ij')
            points.append(torch.stack([xx, yy], -1).reshape(-1, 2))
            strides.append(torch.full((h * w, 1), float(stride), device=device))
        return torch.cat(points), torch.cat(strides)

    def decode(self, cls_scores, reg_dists):
        """ppdet ``forward_eval``: boxes (B, N, 4) x1y1x2y2 in network-input pixels, scores (B, C, N)."""
        scores = torch.cat([s.flatten(2) for s in cls_scores], -1)
        dists = torch.cat([self.distribution_project(r.permute(0, 2, 3, 1)).flatten(1, 2) for r in reg_dists], 1)
        points, strides = self.anchor_points([r.shape[-2:] for r in reg_dists], reg_dists[0].device)
        lt, rb = dists.split(2, -1)
        boxes = torch.cat([points - lt, points + rb], -1) * strides  # ppdet's order: distance2bbox, then x stride
        return boxes, scores

    def post_process(self, boxes, scores, scale_factor_wh=None):
        """ppdet ``post_process`` for one image: rescale, then :func:`multiclass_nms` with ``test_cfg['nms']``.

        Args:
            boxes (Tensor): (N, 4) network-input pixels.
            scores (Tensor): (C, N).
            scale_factor_wh (Sequence[float], optional): network size / image size as ``(w, h)`` (mmdet's
                ``scale_factor``; ppdet stores ``[h, w]``). None keeps network-input pixels.

        Returns:
            Tensor: (K, 6) ``[label, score, x1, y1, x2, y2]`` in ppdet's order, not clipped (as ppdet).
        """
        if scale_factor_wh is not None:
            boxes = boxes / boxes.new_tensor(scale_factor_wh, dtype=torch.float32).repeat(2)
        return multiclass_nms(boxes, scores, **self.test_cfg.get('nms', {}))[0]

    def predict_by_feat(self, cls_scores, reg_dists, batch_img_metas, rescale=True):
        """Decode + ppdet NMS per image into ``InstanceData(bboxes, scores, labels)``.

        With ``rescale`` boxes are in original-image pixels (``scale_factor``, ``ori_shape`` of each meta), else
        in network-input pixels (``img_shape``). ``test_cfg['clip_to_image']`` then clips them to that image,
        which PaddleX's pipeline does and ppdet's ``post_process`` does not; it changes no score, set or order.
        """
        from mmengine.structures import InstanceData  # the mmdet detector's result type (its path only)
        boxes, scores = self.decode(cls_scores, reg_dists)
        results = []
        for b, s, meta in zip(boxes, scores, batch_img_metas):
            dets = self.post_process(b, s, meta['scale_factor'] if rescale else None)
            bboxes = dets[:, 2:]
            if self.test_cfg.get('clip_to_image', False):
                h, w = meta['ori_shape' if rescale else 'img_shape'][:2]
                bboxes = torch.stack([bboxes[:, 0].clamp(0, w), bboxes[:, 1].clamp(0, h),
                                      bboxes[:, 2].clamp(0, w), bboxes[:, 3].clamp(0, h)], 1)
            results.append(InstanceData(bboxes=bboxes, scores=dets[:, 1], labels=dets[:, 0].long()))
        return results

    def predict(self, feats, batch_data_samples, rescale=True):
        """mmdet ``BaseDenseHead.predict``: features + data samples -> list of ``InstanceData``."""
        return self.predict_by_feat(*self(feats), batch_img_metas=[s.metainfo for s in batch_data_samples],
                                    rescale=rescale)

    def loss(self, *args, **kwargs):
        raise NotImplementedError('PicoHeadV2: training is not ported (inference only); train with '
                                  'PaddleDetection and convert the weights')
