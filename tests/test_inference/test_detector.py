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


def _weights(shared_dir, size):
    return osp.join(shared_dir, 'fixtures', 'picodet', f'picodet_s_{size}_lcnet_pedestrian_folded.pdparams')


def test_backend_and_precision_options(shared_dir, monkeypatch):
    """``create_model`` on a detector honours use_hpip / backend / precision as on a keypoint model, each wrong
    combination refused with one message (nothing runs: the graphs are built on the first call); int8 is refused
    with its measured cost (tools/dev/detector_precision.py)."""
    import kpt_plugin
    from kpt_plugin.errors import BackendError, OptionError
    from kpt_plugin.inference import quantize

    def make(**kw):
        return kpt_plugin.create_model('PicoDet-S_pedestrian_192', model_dir=_weights(shared_dir, 192), device='cpu',
                                       **kw)

    assert make().backend == 'torch'
    det = make(use_hpip=True)
    assert det.backend == 'auto' and det.tuning is not None and "backend='auto'" in repr(det)
    assert make(backend='onnxruntime').backend == 'onnxruntime'
    for kw in (dict(precision='int8'), dict(precision='int8', backend='onnxruntime')):
        with pytest.raises(OptionError, match="precision='int8' is not offered for PicoDet: .* none of the 39 persons"):
            make(**kw)
    with pytest.raises(OptionError, match='backend must be one of torch, openvino, onnxruntime, auto'):
        make(backend='tensorrt')
    monkeypatch.setattr(quantize, 'has_bf16', lambda: False)
    with pytest.raises(BackendError, match=r'no bf16 support \(no avx512_bf16/amx\): run the detector at fp32'):
        make(precision='bf16')
    monkeypatch.setattr(quantize, 'has_bf16', lambda: True)
    det = make(precision='bf16')  # reduced precision does not run on torch: the measured choice, of bf16 runtimes
    assert det.backend == 'auto' and det.tuning.candidates == [('openvino', 'bf16')]
    det = make(backend='openvino', precision='bf16')
    assert det._net.config['INFERENCE_PRECISION_HINT'] == 'bf16' and "precision='bf16'" in repr(det)
    assert make(backend='openvino')._net.config['INFERENCE_PRECISION_HINT'] == 'f32'
    with pytest.raises(OptionError, match="precision='bf16' runs on the openvino backend"):
        make(backend='onnxruntime', precision='bf16')
