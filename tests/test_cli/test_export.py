"""``kpt-plugin export`` + ONNX Runtime parity with PyTorch (heatmaps <= 1e-4, keypoints <= 0.01 px)."""
import os.path as osp
import re

import numpy as np
import onnxruntime  # a test extra (requirements/tests.txt): missing it is a failure, not a skip
import openvino  # noqa: F401  (also a test extra: the default high-performance backend on cpu)
import pytest
import torch

import kpt_plugin
from kpt_plugin_cli import main


@pytest.fixture(scope='module')
def ckpt(enhance_ckpt):
    return enhance_ckpt('128x96')


@pytest.fixture(scope='module')
def crops(shared_dir):
    d = osp.join(shared_dir, 'fixtures', 'enhance')
    meta = np.load(osp.join(d, '128x96_real_crops_b8_meta.npz'))
    return (np.load(osp.join(d, '128x96_real_crops_b8.npy'))[:3], meta['center'][:3].astype(np.float32),
            meta['scale'][:3].astype(np.float32))


@pytest.fixture(scope='module')
def torch_nets(ckpt):
    from kpt_plugin.inference.nets import FlipFusedNet, HeatmapNet, build_pose_model
    from kpt_plugin.zoo import get_config_path
    pose = build_pose_model(get_config_path('PP-TinyPose_128x96'), ckpt)
    net = HeatmapNet(pose).eval()  # BN not folded: the reference
    return net, FlipFusedNet(net).eval()


def _session(path):
    return onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])


def test_export_flip_decode_dynamic_parity(ckpt, crops, torch_nets, tmp_path, capsys):
    from kpt_plugin.codecs.pp_heatmap import ppdet_decode
    out = str(tmp_path / 'flip_decode.onnx')
    assert main(['export', '--model', 'PP-TinyPose_128x96', '--weights', ckpt, '--format', 'onnx', '-o', out,
                 '--dynamic-batch', '--with-decode', '--flip']) == 0
    assert 'flip fused, decode in graph' in capsys.readouterr().out
    sess = _session(out)
    assert [i.name for i in sess.get_inputs()] == ['image', 'center', 'scale']
    assert [o.name for o in sess.get_outputs()] == ['heatmaps', 'keypoints']
    x, center, scale = crops
    hm, kp = sess.run(None, dict(image=x, center=center, scale=scale))
    with torch.inference_mode():
        ref = torch_nets[1](torch.from_numpy(x)).numpy()
    assert np.abs(hm - ref).max() <= 1e-4
    preds, maxvals = ppdet_decode(ref, center, scale)
    assert np.abs(kp[..., :2] - preds).max() <= 0.01
    assert np.abs(kp[..., 2] - maxvals[..., 0]).max() <= 1e-4
    # dynamic batch: a single crop works too and gives the same answer
    hm1, _ = sess.run(None, dict(image=x[1:2], center=center[1:2], scale=scale[1:2]))
    assert np.abs(hm1[0] - hm[1]).max() <= 1e-5


@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_export_fixed_batch_parity(ckpt, crops, torch_nets, shared_dir, tmp_path, capsys, runtime):
    """``--runtime``: each runtime's fold plan, run by its backend as a user file (fixed batch 2, 3 crops: 2 + 1
    padded), equals the torch model and ppdet's heatmaps."""
    from kpt_plugin.inference.runtime.onnxruntime import OrtBackend
    from kpt_plugin.inference.runtime.openvino import OpenVinoBackend
    out = str(tmp_path / f'{runtime}.onnx')
    assert main(['export', '--model', 'PP-TinyPose_128x96', '--weights', ckpt, '-o', out, '--batch-size', '2',
                 '--runtime', runtime]) == 0
    assert f'for {runtime}' in capsys.readouterr().out
    runner = (OpenVinoBackend if runtime == 'openvino' else OrtBackend)(out, 'cpu', threads=1)
    assert runner.fixed == 2 and runner.threads == 1
    x = crops[0]
    hm = runner(x)  # 3 crops through a batch-2 graph: 2 + 1 padded
    assert hm.shape == (3, 17, 32, 24)
    with torch.inference_mode():
        ref = torch_nets[0](torch.from_numpy(x)).numpy()
    assert np.abs(hm - ref).max() <= 1e-4
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8_heatmap_paddle.npy'))[:3]
    assert np.abs(hm - paddle).max() <= 1e-4


@pytest.mark.parametrize('how', [dict(use_hpip=True, flip=True),
                                 dict(hpi_config=dict(backend='onnxruntime'))])
def test_hpip_backend_predict_parity(ckpt, shared_dir, tmp_path, monkeypatch, how):
    """use_hpip=True (backend auto: the measured-fastest runtime, flip test fused) and PaddleX's hpi_config (ONNX
    Runtime) export fixed-batch graphs into the cache and predict the same keypoints as torch."""
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    img = osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000196141.jpg')
    fast = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu', **how)
    want = 'auto' if how.get('use_hpip') else 'onnxruntime'
    assert fast.backend == want and fast.runner.name == want and fast.runner.onnx_path is None
    ref = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu', flip=how.get('flip', False))
    boxes = [[100, 50, 300, 400], [10, 20, 120, 260, 0.9]]
    b = next(ref.predict(img, bboxes=boxes))
    first = next(fast.predict(img, bboxes=boxes))  # a cold graph backend may answer this one on torch
    getattr(fast.runner, 'wait', lambda: None)()  # ... while it exports the graph in the background
    a = next(fast.predict(img, bboxes=boxes))
    if want == 'onnxruntime':
        # 2 crops -> one fixed-batch-2 graph exported into the cache
        assert fast.runner.onnx_path.startswith(str(tmp_path / 'home')) and '-b2-' in fast.runner.onnx_path
    else:
        assert fast.runner.describe().startswith('b2=') and 'choice=' in repr(fast)
    for got in (first, a):
        assert len(got['kpts']) == 2
        np.testing.assert_allclose([k['keypoints'] for k in got['kpts']], [k['keypoints'] for k in b['kpts']],
                                   atol=0.01)


def test_export_bad_arguments(tmp_path, capsys):
    assert main(['export', '--model', 'PP-TinyPose_128x96', '-o', str(tmp_path / 'model.txt')]) == 2
    assert 'must end with .onnx' in capsys.readouterr().err
    assert main(['export', '--model', 'nope', '-o', str(tmp_path / 'm.onnx')]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_hpi_config_and_auto_backend(ckpt, monkeypatch):
    """PaddleX's hpi_config keys, the automatic choice per device, and one clear error for what does not fit."""
    from kpt_plugin.inference import runtime
    from kpt_plugin.inference.runtime import auto_backend as auto_hpip_backend
    from kpt_plugin.inference.runtime.openvino import OpenVinoBackend
    m = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu',
                                hpi_config=dict(backend='openvino', backend_config=dict(cpu_num_threads=1)))
    assert m.backend == 'openvino' and m.runner.threads == 1
    for bad, msg in [(dict(backend='tensorrt'), "backend 'tensorrt' is a Paddle runtime"),
                     (dict(backend='tvm'), "unknown backend 'tvm'"),
                     (dict(auto_config=False, foo=1), 'unsupported keys auto_config, foo'),
                     (dict(backend_config=dict(cpu_num_threads=0)), 'cpu_num_threads must be a positive integer'),
                     (dict(backend_config=dict(precision='fp16')), 'only {"cpu_num_threads": N}')]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu', hpi_config=bad)
    assert auto_hpip_backend('cpu') == 'openvino'
    assert auto_hpip_backend('cuda:0') == 'onnxruntime'
    with pytest.raises(RuntimeError, match='no high-performance backend for npu:0'):
        auto_hpip_backend('npu:0')
    with pytest.raises(RuntimeError, match='the openvino backend runs on cpu, not cuda:0'):
        OpenVinoBackend(device='cuda:0')
    installed = {'openvino': False, 'onnxruntime': True}
    monkeypatch.setattr(runtime, '_importable', lambda name: installed[name])
    assert auto_hpip_backend('cpu') == 'onnxruntime'
    installed['onnxruntime'] = False
    with pytest.raises(RuntimeError, match='use_hpip on cpu needs openvino or onnxruntime'):
        auto_hpip_backend('cpu')
    with pytest.raises(RuntimeError, match='use_hpip on cuda:0 needs onnxruntime-gpu'):
        auto_hpip_backend('cuda:0')


def test_openvino_backend_runs_an_ir_file(crops, shared_dir):
    """``onnx_path`` may be an OpenVINO IR: the official 128x96 IR (batch 1, heatmaps first) on the openvino
    backend gives ppdet's heatmaps for 3 crops (3 padded-free chunks of 1)."""
    from kpt_plugin.inference.runtime.openvino import OpenVinoBackend
    ir = osp.join(shared_dir, 'weights', 'pp_tinypose_enhance_openvino_fp16', '128x96', 'model.xml')
    runner = OpenVinoBackend(ir, 'cpu', threads=1)
    assert runner.fixed == 1
    hm = runner(crops[0])
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8_heatmap_paddle.npy'))[:3]
    assert hm.shape == paddle.shape and np.abs(hm - paddle).max() <= 1e-4
