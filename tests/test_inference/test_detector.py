"""The predictor's PicoDet (plain modules, no mmdet) against mmdet's PicoDet of the same config and weights."""
import os.path as osp

import numpy as np
import pytest
import torch

from kpt_plugin.inference.detector import PlainPicoDet, build_detector
from weight_convert.archs import get_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module', params=[192, 320])
def pair(request, shared_dir, tmp_path_factory):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from weight_convert.convert import convert
    from weight_convert.io import load_checkpoint
    size = request.param
    arch = f'picodet_s_lcnet_pedestrian_{size}'
    ckpt = str(tmp_path_factory.mktemp('det') / f'{arch}.pth')
    convert(osp.join(shared_dir, 'fixtures', 'picodet', f'picodet_s_{size}_lcnet_pedestrian_folded.pdparams'), ckpt,
            arch=arch)
    config = osp.join(REPO, get_arch(arch).config)
    plain = build_detector(config, ckpt)
    with DefaultScope.overwrite_default_scope('mmdet'):
        theirs = MODELS.build(Config.fromfile(config).model)
    theirs.load_state_dict(load_checkpoint(ckpt, map_location='cpu')['state_dict'], strict=True)
    return size, plain, theirs.eval()


def test_released_configs_build_the_plain_detector_with_mmdets_tensors(pair):
    _, plain, theirs = pair
    assert isinstance(plain, PlainPicoDet) and not plain.training
    ours, ref = plain.state_dict(), theirs.state_dict()
    assert list(ours) == list(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ours)


def test_plain_detector_gives_mmdets_boxes_bit_for_bit(pair):
    size, plain, theirs = pair
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32))

    def boxes(m):
        with torch.no_grad():
            return m.bbox_head.decode(*m.bbox_head(m.neck(m.backbone(x))))
    for got, want in zip(boxes(plain), boxes(theirs)):
        assert torch.equal(got, want)


def test_other_models_are_built_by_mmdet():
    from mmengine.config import ConfigDict
    cfg = ConfigDict(type='PicoDet', backbone=dict(type='ResNet'), neck=dict(type='LCPAN'),
                     bbox_head=dict(type='PicoHeadV2'))
    assert not PlainPicoDet.fits(cfg)
    cfg.backbone = dict(type='mmdet.LCNet')
    assert PlainPicoDet.fits(cfg)
    cfg.data_preprocessor = dict(type='DetDataPreprocessor')
    assert not PlainPicoDet.fits(cfg)
