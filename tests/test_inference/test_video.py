"""Video loop on a fake pipeline: outputs, batching, frame folders, Ctrl-C, strict JSON lines, smoothing."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from kpt_plugin.errors import InputError
from kpt_plugin.inference.video import FrameSource, camera_index, is_video_input, output_stem, run_video

SIZE = (160, 120)


class FakePipeline:
    """One person per frame walking right 3 px / frame, keypoints jittered (seeded); records the batch sizes."""

    def __init__(self, interrupt_at_call=None, nan=False):
        self.calls, self.frame, self.interrupt_at_call, self.nan = [], 0, interrupt_at_call, nan
        self.rng = np.random.default_rng(0)
        self.template = self.rng.uniform(-15, 15, (17, 2))

    def predict(self, frames, batch_size=None, det_threshold=None):
        self.calls.append(len(frames))
        if self.interrupt_at_call == len(self.calls):
            raise KeyboardInterrupt
        return self._results(frames)

    def _results(self, frames):
        for frame in frames:
            assert frame.shape == (SIZE[1], SIZE[0], 3) and frame.dtype == np.uint8
            cx = 40 + 3 * self.frame
            kps = np.concatenate([self.template + [cx, 60] + self.rng.normal(0, 1.5, (17, 2)),
                                  np.full((17, 1), 0.8)], axis=1)
            if self.nan:
                kps[0, 0] = np.nan
            self.frame += 1
            yield dict(boxes=[dict(coordinate=[cx - 20, 30, cx + 20, 90], det_score=0.9, keypoints=kps.tolist(),
                                   kpt_score=0.8)])


def write_clip(path, shared_dir, n=10, fps=10.0):
    """An ``n``-frame 160x120 mp4v clip from a demo photo, panning 2 px / frame."""
    img = cv2.resize(cv2.imread(osp.join(shared_dir, 'data', 'demo', 'demo_2.jpg')), SIZE)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, SIZE)
    assert w.isOpened()
    for i in range(n):
        w.write(np.roll(img, 2 * i, axis=1))
    w.release()
    return str(path)


def _read_video(path):
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def _strict_lines(path):
    def no_constants(name):
        raise AssertionError(f'non-JSON token {name}')
    with open(path, encoding='utf-8') as f:
        return [json.loads(line, parse_constant=no_constants) for line in f]


@pytest.fixture(scope='module')
def clip(shared_dir, tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp('clip') / 'clip.mp4', shared_dir)


def test_video_file(clip, tmp_path):
    pipe = FakePipeline()
    out = run_video(pipe, clip, str(tmp_path / 'out'), batch_size=4, progress=False)
    assert pipe.calls == [4, 4, 2]  # frames go through the pipeline in batches
    assert sorted(os.listdir(tmp_path / 'out')) == ['clip_res.jsonl', 'clip_res.mp4']  # no temporary left
    assert out['frames'] == 10 and out['persons'] == 10 and out['tracks'] == 1 and not out['interrupted']
    frames, fps = _read_video(out['video'])
    assert len(frames) == 10 and frames[0].shape == (120, 160, 3) and fps == pytest.approx(10.0)
    lines = _strict_lines(out['jsonl'])
    assert [ln['frame'] for ln in lines] == list(range(10))
    assert [ln['time'] for ln in lines] == pytest.approx([i / 10 for i in range(10)])
    p = lines[3]['persons'][0]
    assert set(p) == {'track_id', 'bbox', 'det_score', 'keypoints', 'kpt_score'}
    assert p['track_id'] == 1 and p['bbox'] == [29.0, 30.0, 69.0, 90.0] and len(p['keypoints']) == 17


def test_frame_folder_and_limit(shared_dir, tmp_path):
    img = cv2.resize(cv2.imread(osp.join(shared_dir, 'data', 'demo', 'demo_4.jpg')), SIZE)
    folder = tmp_path / 'seq'
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f'f{i:03d}.png'), np.roll(img, i, axis=0))
    (folder / 'notes.txt').write_text('not a frame')
    out = run_video(FakePipeline(), str(folder), str(tmp_path / 'out'), batch_size=2, max_frames=5)
    assert osp.basename(out['video']) == 'seq_res.mp4' and out['frames'] == 5
    frames, fps = _read_video(out['video'])
    assert len(frames) == 5 and fps == pytest.approx(25.0)  # a folder has no fps: 25 unless given


def test_ctrl_c_keeps_what_was_written(clip, tmp_path):
    pipe = FakePipeline(interrupt_at_call=2)
    out = run_video(pipe, clip, str(tmp_path), batch_size=4)
    assert out['interrupted'] and out['frames'] == 4
    assert sorted(os.listdir(tmp_path)) == ['clip_res.jsonl', 'clip_res.mp4']
    frames, _ = _read_video(out['video'])  # finalised: it plays
    assert len(frames) == 4
    assert len(_strict_lines(out['jsonl'])) == 4


def test_non_finite_values_become_null(clip, tmp_path):
    out = run_video(FakePipeline(nan=True), clip, str(tmp_path), max_frames=2)
    lines = _strict_lines(out['jsonl'])
    assert len(lines) == 2 and lines[0]['persons'][0]['keypoints'][0][0] is None


@pytest.mark.parametrize('smooth_type', ['oneeuro', 'ema'])
def test_smoothing_reduces_jitter(clip, tmp_path, smooth_type):
    raw = _strict_lines(run_video(FakePipeline(), clip, str(tmp_path / 'raw'))['jsonl'])
    sm = _strict_lines(run_video(FakePipeline(), clip, str(tmp_path / 'sm'), smooth=True,
                                 smooth_type=smooth_type)['jsonl'])
    kp = lambda lines: np.array([ln['persons'][0]['keypoints'] for ln in lines])  # noqa: E731
    a, b = kp(raw), kp(sm)
    np.testing.assert_array_equal(a[0], b[0])  # the first frame passes through
    accel = lambda k: np.abs(np.diff(k[:, :, :2], n=2, axis=0)).mean()  # noqa: E731 - motion is linear here
    assert accel(b) < 0.75 * accel(a)
    np.testing.assert_array_equal(a[:, :, 2], b[:, :, 2])


def test_inputs_and_errors(tmp_path):
    assert camera_index(0) == 0 and camera_index('1') == 1 and camera_index('a.mp4') is None
    assert camera_index(True) is None
    assert is_video_input('x/A.MP4') and is_video_input('2') and not is_video_input('a.jpg')
    assert output_stem('3') == 'camera3' and output_stem('d/clip.avi') == 'clip'
    with pytest.raises(InputError, match='no such file'):
        FrameSource(str(tmp_path / 'missing.mp4'))
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'not a video at all')
    with pytest.raises(InputError, match='cannot open'):
        FrameSource(str(bad))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='no frames'):
        FrameSource(str(tmp_path / 'empty'))
    with pytest.raises(InputError, match='batch_size'):
        run_video(FakePipeline(), str(bad), str(tmp_path), batch_size=0)


def test_existing_outputs_are_never_replaced_silently(clip, tmp_path):
    first = run_video(FakePipeline(), clip, str(tmp_path), max_frames=3)
    before = open(first['jsonl']).read()
    with pytest.raises(InputError, match=r'clip_res\.(mp4|jsonl) already exists.*--overwrite'):
        run_video(FakePipeline(), clip, str(tmp_path), max_frames=1)
    assert open(first['jsonl']).read() == before  # the earlier run's lines are intact
    again = run_video(FakePipeline(), clip, str(tmp_path), max_frames=1, overwrite=True)
    assert len(_strict_lines(again['jsonl'])) == 1
