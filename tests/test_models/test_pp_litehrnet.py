import os.path as osp

import numpy as np
import pytest
import torch

import kpt_plugin  # noqa: F401
from kpt_plugin.models.pose import PADDLE_LITEHRNET_ARCHS, PPLiteHRNet
from kpt_plugin.zoo import get_config_path as config_path
from weight_convert.convert import convert

SIZES = {'128x96': 'PP-TinyPose_128x96', '256x192': 'PP-TinyPose_256x192'}


@pytest.fixture(scope='module', params=sorted(SIZES))
def converted(request, shared_dir, tmp_path_factory):
    from mmpose.apis import init_model
    size = request.param
    out = tmp_path_factory.mktemp('ckpt') / f'{size}.pth'
    convert(osp.join(shared_dir, 'fixtures', 'random', f'{size}_randomized.pdparams'), str(out))
    model = init_model(config_path(SIZES[size]), str(out), device='cpu')
    return size, model


def test_parameter_count(converted):
    _, model = converted
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_318_625


def test_heatmaps_match_paddledetection(converted, shared_dir):
    size, model = converted
    x = torch.from_numpy(np.load(osp.join(shared_dir, 'fixtures', 'random', f'{size}_input_b8.npy')))
    ref = np.load(osp.join(shared_dir, 'fixtures', 'random', f'{size}_heatmap_b8.npy'))
    with torch.no_grad():
        out = model.head(model.backbone(x)).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5
    assert (out.reshape(8, 17, -1).argmax(-1) == ref.reshape(8, 17, -1).argmax(-1)).all()


@pytest.mark.parametrize('arch', sorted(PADDLE_LITEHRNET_ARCHS))
def test_presets_build_and_run(arch):
    net = PPLiteHRNet(arch=arch).eval()
    with torch.no_grad():
        (out, ) = net(torch.rand(1, 3, 128, 96))
    width = PADDLE_LITEHRNET_ARCHS[arch]['num_channels'][0][0]
    assert out.shape == (1, width, 32, 24)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(KeyError, match='wider_naive'):
        PPLiteHRNet(arch='nope')


def test_fuse_layer_keeps_paddle_inplace_aliasing():
    # ppdet's fuse loop starts each output from its branch-0 term and adds that term again (so it counts
    # twice), in place for output 0; later outputs read the already-fused out[0]. A non-aliasing rewrite
    # changes the function (0.012 off on real weights), so pin the exact arithmetic.
    torch.manual_seed(0)
    net = PPLiteHRNet(arch='wider_naive').eval()
    module = net.stage0[0]
    xs = [torch.rand(1, 40, 8, 6), torch.rand(1, 80, 4, 3)]
    with torch.no_grad():
        out = module([x.clone() for x in xs])
        ys = [module.layers[i](xs[i].clone()) for i in range(2)]
        fused0 = ys[0] + ys[0] + module.fuse_layers[0][1](ys[1])
        expected1 = 2 * module.fuse_layers[1][0](fused0) + ys[1]
    assert torch.allclose(out[0], torch.relu(fused0), atol=1e-6)
    assert torch.allclose(out[1], torch.relu(expected1), atol=1e-6)
