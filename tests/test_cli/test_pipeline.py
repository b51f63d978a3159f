"""``kpt-plugin pipeline``: images and videos into --save-dir, options passed on, failures, Ctrl-C; one real run."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

import kpt_plugin_cli
from kpt_plugin.inference import pipeline as pipeline_mod
from kpt_plugin.inference.inputs import InputError, expand_inputs, load_image
from kpt_plugin.inference.pipeline import PipelineResult
from kpt_plugin_cli import main


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    # the launcher's table may not list the sub-command yet; registering it here keeps these tests about the module
    monkeypatch.setitem(kpt_plugin_cli.SUBCOMMANDS, 'pipeline', ('kpt_plugin.cli.pipeline', 'keypoint pipeline'))


class FakePipeline:
    """Two persons per image at fixed places; the real result class, so the real save methods run."""

    def __init__(self, interrupt_at_call=None):
        self.calls, self.interrupt_at_call = [], interrupt_at_call

    def predict(self, inputs, batch_size=None, det_threshold=None):
        self.calls.append(batch_size)
        if self.interrupt_at_call == len(self.calls):
            raise KeyboardInterrupt
        return self._results(inputs)

    def _results(self, inputs):
        for item in expand_inputs(inputs):
            try:
                img = load_image(item)
            except InputError as e:
                yield PipelineResult(dict(input_path=item.input_path, boxes=[], error=str(e)), None, item.name)
                continue
            h, w = img.shape[:2]
            boxes = []
            for x0 in (0.1, 0.55):
                kps = [[w * (x0 + 0.02 * (j % 5)), h * (0.2 + 0.04 * j), 0.9] for j in range(17)]
                boxes.append(dict(coordinate=[w * x0, h * 0.15, w * (x0 + 0.3), h * 0.9], det_score=0.9,
                                  keypoints=kps, kpt_score=0.9))
            yield PipelineResult(dict(input_path=item.input_path, boxes=boxes), img, item.name)


@pytest.fixture
def fake(monkeypatch):
    made = []

    def create_pipeline(pipeline='human_keypoint_detection', interrupt_at_call=None, **kwargs):
        obj = FakePipeline(interrupt_at_call)
        made.append(dict(pipeline=pipeline, obj=obj, **kwargs))
        return obj

    monkeypatch.setattr(pipeline_mod, 'create_pipeline', create_pipeline)
    return made


def _clip(path, src, n=10, size=(160, 120), fps=10.0):
    img = cv2.resize(cv2.imread(src), size)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    for i in range(n):
        w.write(np.roll(img, i, axis=1))
    w.release()
    return str(path)


@pytest.fixture(scope='module')
def demo(shared_dir):
    return osp.join(shared_dir, 'data', 'demo')


@pytest.fixture(scope='module')
def clip(demo, tmp_path_factory):
    return _clip(tmp_path_factory.mktemp('clip') / 'walk.mp4', osp.join(demo, 'demo_2.jpg'))


def test_images_and_video(fake, demo, clip, tmp_path, capsys):
    out = tmp_path / 'out'
    rc = main(['pipeline', osp.join(demo, 'demo_2.jpg'), osp.join(demo, 'demo_4.jpg'), clip, '--save-dir', str(out),
               '--batch-size', '3', '--det-threshold', '0.4', '--flip', '--det-weights', 'D', '--kpt-weights', 'K',
               '--det-model', 'PicoDet-S_pedestrian_192', '--backend', 'hpip', '--device', 'cpu', '--smooth',
               '--smooth-type', 'ema', '--quiet'])
    assert rc == 0
    assert sorted(os.listdir(out)) == ['demo_2_res.jpg', 'demo_2_res.json', 'demo_4_res.jpg', 'demo_4_res.json',
                                       'walk_res.jsonl', 'walk_res.mp4']
    kw = fake[0]
    assert (kw['det_model_dir'], kw['kpt_model_dir'], kw['det_threshold'], kw['flip'], kw['batch_size'],
            kw['backend'], kw['device'], kw['det_model']) == ('D', 'K', 0.4, True, 3, 'auto', 'cpu',
                                                              'PicoDet-S_pedestrian_192')
    assert (kw['precision'], kw['calib']) == ('fp32', None)
    assert kw['obj'].calls == [3, 3, 3, 3, 1]  # the images, then the video's 10 frames 3 at a time
    with open(out / 'demo_2_res.json') as f:
        res = json.load(f)
    assert len(res['boxes']) == 2 and set(res['boxes'][0]) == {'coordinate', 'det_score', 'keypoints', 'kpt_score'}
    with open(out / 'walk_res.jsonl') as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 10 and {p['track_id'] for ln in lines for p in ln['persons']} == {1, 2}
    text = capsys.readouterr().out
    assert 'walk.mp4: 10 frame(s), 20 person(s), 2 track(s)' in text
    assert 'done: 2 image(s), 1 video(s) (10 frame(s)), 24 person(s)' in text and 'failed: 0' in text


def test_precision_options(fake, demo, tmp_path):
    """--precision / --calib reach create_pipeline; reduced precision turns the default torch backend into the
    measured choice (it does not run on torch), an explicit graph backend stays."""
    img = osp.join(demo, 'demo_2.jpg')
    assert main(['pipeline', img, '--save-dir', str(tmp_path / 'a'), '--precision', 'int8', '--calib', demo,
                 '--quiet']) == 0
    assert (fake[-1]['precision'], fake[-1]['calib'], fake[-1]['backend']) == ('int8', demo, 'auto')
    assert main(['pipeline', img, '--save-dir', str(tmp_path / 'b'), '--precision', 'int8', '--backend',
                 'onnxruntime', '--quiet']) == 0
    assert (fake[-1]['precision'], fake[-1]['backend']) == ('int8', 'onnxruntime')


def test_failures_are_listed(fake, demo, tmp_path, capsys):
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'garbage')
    rc = main(['pipeline', osp.join(demo, 'demo_7.jpg'), str(tmp_path / 'missing.jpg'), str(bad),
               str(tmp_path / 'gone.avi'), '--save-dir', str(tmp_path / 'out')])
    assert rc == 1
    assert sorted(os.listdir(tmp_path / 'out')) == ['demo_7_res.jpg', 'demo_7_res.json']
    text = capsys.readouterr().out
    assert 'done: 1 image(s), 0 video(s)' in text and 'failed: 3' in text
    assert 'missing.jpg: no such file' in text and 'bad.mp4: OpenCV cannot open it' in text
    assert 'gone.avi: no such file' in text


def test_frames_as_video(fake, demo, tmp_path):
    seq = tmp_path / 'seq'
    seq.mkdir()
    img = cv2.resize(cv2.imread(osp.join(demo, 'demo_7.jpg')), (160, 120))
    for i in range(4):
        cv2.imwrite(str(seq / f'{i:02d}.jpg'), img)
    rc = main(['pipeline', str(seq), '--frames-as-video', '--fps', '5', '--save-dir', str(tmp_path / 'out')])
    assert rc == 0 and sorted(os.listdir(tmp_path / 'out')) == ['seq_res.jsonl', 'seq_res.mp4']
    cap = cv2.VideoCapture(str(tmp_path / 'out' / 'seq_res.mp4'))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()


def test_ctrl_c_in_a_video(fake, monkeypatch, clip, tmp_path, capsys):
    real = pipeline_mod.create_pipeline
    monkeypatch.setattr(pipeline_mod, 'create_pipeline', lambda *a, **k: real(*a, interrupt_at_call=3, **k))
    rc = main(['pipeline', clip, clip, '--batch-size', '4', '--save-dir', str(tmp_path)])
    assert rc == 130
    assert sorted(os.listdir(tmp_path)) == ['walk_res.jsonl', 'walk_res.mp4']
    text = capsys.readouterr().out
    assert 'walk.mp4: 8 frame(s)' in text and 'interrupted' in text and 'done: 0 image(s), 1 video(s)' in text
    cap = cv2.VideoCapture(str(tmp_path / 'walk_res.mp4'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8  # finalised: its index was written
    cap.release()


def test_user_errors_before_loading(fake, demo, tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    img = osp.join(demo, 'demo_7.jpg')
    assert main(['pipeline', img, '--save-dir', str(blocker / 'sub')]) == 2
    assert main(['pipeline', img, '--camera-frames', '0', '--save-dir', str(tmp_path)]) == 2
    assert main(['pipeline', img, '--det-threshold', '1.5', '--save-dir', str(tmp_path)]) == 2
    assert fake == []  # no model was loaded
    err = capsys.readouterr().err
    assert 'cannot write there' in err and '--camera-frames must be >= 1' in err and '--det-threshold' in err
    with pytest.raises(SystemExit):
        main(['pipeline', img, '--smooth-type', 'kalman'])


def test_real_pipeline_end_to_end(shared_dir, demo, tmp_path):
    """PicoDet-320 + TinyPose-128x96 from the fixtures on demo_7 (4 persons) and a 4-frame clip of it."""
    img = osp.join(demo, 'demo_7.jpg')
    clip = _clip(tmp_path / 'four.mp4', img, n=4, size=(450, 300))
    out = tmp_path / 'out'
    rc = main(['pipeline', img, clip, '--device', 'cpu', '--smooth', '--save-dir', str(out), '--det-weights',
               osp.join(shared_dir, 'fixtures', 'picodet', 'picodet_s_320_lcnet_pedestrian_folded.pdparams'),
               '--kpt-weights', osp.join(shared_dir, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams')])
    assert rc == 0
    with open(out / 'demo_7_res.json') as f:
        got = json.load(f)['boxes']
    with open(osp.join(shared_dir, 'fixtures', 'paddlex', 'pipeline', 'picodet320_tinypose128x96', 'noflip',
                       'demo_7.json')) as f:
        want = json.load(f)['boxes']
    assert len(got) == len(want) == 4
    for g, w in zip(sorted(got, key=lambda b: b['coordinate']), sorted(want, key=lambda b: b['coordinate'])):
        np.testing.assert_allclose(g['coordinate'], w['coordinate'], atol=1.0)
    with open(out / 'four_res.jsonl') as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 4 and all(len(ln['persons']) == 4 for ln in lines)
    ids = [sorted(p['track_id'] for p in ln['persons']) for ln in lines]
    assert ids == [[1, 2, 3, 4]] * 4  # the same four persons in every frame
    assert cv2.VideoCapture(str(out / 'four_res.mp4')).get(cv2.CAP_PROP_FRAME_COUNT) == 4
