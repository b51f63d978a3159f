"""``kpt-plugin predict``: json + image per input, directory/list/boxes inputs, failures summarised."""
import json
import os
import os.path as osp

import pytest

from kpt_plugin_cli import main


@pytest.fixture(scope='module')
def ckpt(enhance_ckpt):
    return enhance_ckpt('128x96')


@pytest.fixture(scope='module')
def data_dir(shared_dir):
    return osp.join(shared_dir, 'data', 'coco_val2017_mini')


def _stems(data_dir):
    return sorted(osp.splitext(f)[0] for f in os.listdir(data_dir) if f.endswith('.jpg'))


def test_predict_directory(ckpt, data_dir, tmp_path, capsys):
    out = tmp_path / 'out'
    rc = main(['predict', data_dir, '--model', 'PP-TinyPose_128x96', '--weights', ckpt, '--device', 'cpu',
               '--batch-size', '2', '--save-dir', str(out)])
    assert rc == 0
    stems = _stems(data_dir)
    assert sorted(os.listdir(out)) == sorted([f'{s}_res.json' for s in stems] + [f'{s}_res.jpg' for s in stems])
    with open(out / f'{stems[0]}_res.json') as f:
        res = json.load(f)
    assert res['input_path'] == osp.join(data_dir, f'{stems[0]}.jpg')
    assert len(res['kpts']) == 1 and len(res['kpts'][0]['keypoints']) == 17
    assert 'bbox' not in res['kpts'][0]
    summary = capsys.readouterr().out
    assert f'done: {len(stems)} image(s)' in summary and 'failed: 0' in summary


def test_predict_with_boxes_and_failures(ckpt, data_dir, tmp_path, capsys):
    det = osp.join(data_dir, 'test_coco_det_AP_H_56.json')
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'garbage')
    img = osp.join(data_dir, '000000197388.jpg')
    out = tmp_path / 'out'
    rc = main(['predict', img, str(bad), str(tmp_path / 'missing.jpg'), '--model', 'PP-TinyPose_128x96',
               '--weights', ckpt, '--bboxes', det, '--save-dir', str(out), '--flip', '--no-img'])
    assert rc == 1  # some inputs failed
    assert sorted(os.listdir(out)) == ['000000197388_res.json']
    with open(out / '000000197388_res.json') as f:
        res = json.load(f)
    with open(det) as f:
        n_det = sum(1 for d in json.load(f) if d['image_id'] == 197388)
    assert len(res['kpts']) == n_det and all('bbox' in k and 'det_score' in k for k in res['kpts'])
    text = capsys.readouterr().out
    assert 'done: 1 image(s)' in text and 'failed: 2' in text
    assert f'failed: {bad}: not a readable image' in text
    assert 'missing.jpg: no such file' in text


def test_predict_user_errors_exit_2(ckpt, data_dir, tmp_path, capsys):
    img = osp.join(data_dir, '000000000785.jpg')
    assert main(['predict', img, '--model', 'PP-TinyPose_1x1']) == 2
    assert "unknown model 'PP-TinyPose_1x1'" in capsys.readouterr().err
    assert main(['predict', img, '--weights', ckpt, '--model', 'PP-TinyPose_128x96', '--device', 'npu:0']) == 2
    assert 'npu:0 requested but torch_npu is not installed' in capsys.readouterr().err
    assert main(['predict', img, '--weights', ckpt, '--model', 'PP-TinyPose_128x96', '--bboxes',
                 str(tmp_path / 'none.json')]) == 2
    assert 'none.json: boxes file not found' in capsys.readouterr().err
    assert main(['predict', img, '--weights', ckpt, '--model', 'PP-TinyPose_128x96', '--batch-size', '0']) == 2
    assert '--batch-size must be >= 1' in capsys.readouterr().err


def test_predict_hpip_backend_matches_torch(ckpt, data_dir, tmp_path, monkeypatch):
    """``--backend hpip`` writes the same keypoints as the default torch backend: a short run answers on the eager
    net and leaves the machine untuned (its eager time never paid for a tuning); once a run's eager time has paid
    (``TUNE_AFTER_S``), it tunes in the background, and the next run starts on the tuned choice."""
    import threading
    import numpy as np
    from kpt_plugin.inference.runtime.tuning import AutoBackend
    home = tmp_path / 'home'
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(home))
    img = osp.join(data_dir, '000000000785.jpg')
    kps = {}
    for run in ('torch', 'hpip-short', 'hpip-cold', 'hpip-tuned'):
        if run == 'hpip-cold':
            assert not (home / 'tuning.json').exists() and not (home / 'onnx').exists()
            monkeypatch.setattr(AutoBackend, 'TUNE_AFTER_S', 0.)
        out = tmp_path / run
        assert main(['predict', img, '--weights', ckpt, '--model', 'PP-TinyPose_128x96', '--device', 'cpu',
                     '--backend', run.split('-')[0], '--save-dir', str(out), '--no-img', '--quiet']) == 0
        with open(out / '000000000785_res.json') as f:
            kps[run] = np.array(json.load(f)['kpts'][0]['keypoints'])
        for t in threading.enumerate():  # a process waits for its tuning at exit
            if t.name == 'kpt_plugin-tune':
                t.join()
    assert any(f.endswith('-openvino.onnx') for f in os.listdir(home / 'onnx'))
    assert (home / 'tuning.json').is_file()
    for run in ('hpip-short', 'hpip-cold', 'hpip-tuned'):
        assert np.abs(kps[run] - kps['torch']).max() <= 0.01, run
