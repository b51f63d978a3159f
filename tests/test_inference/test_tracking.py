"""Tracking and keypoint smoothing: ppdet's filter math, jitter reduction, motion kept, track ids."""
import math

import numpy as np
import pytest

from kpt_plugin.inference.tracking import PPDET_SMOOTHING, IoUTracker, KeypointSmoothing, TrackSmoother, box_iou

W, H = 640, 480


def _kp(xy):
    return np.concatenate([np.asarray(xy, dtype=np.float64), np.full((len(xy), 1), 0.9)], axis=1)


def _reference(frames, kind):
    """ppdet's loop written out joint by joint, coordinate by coordinate (the filter under test is vectorised)."""
    p = PPDET_SMOOTHING
    thr = [0.005 * p['thres_mult']] * 5 + [0.01 * p['thres_mult']] * 12
    factor = lambda fc: 2 * math.pi * fc / (2 * math.pi * fc + 1)  # noqa: E731 - te = 1
    x_hat = dx_hat = None
    out = []
    for f in frames:
        f = [list(map(float, j)) for j in f]
        if x_hat is None:
            x_hat, dx_hat = [j[:2] for j in f], [[0.0, 0.0] for _ in f]
            out.append(f)
            continue
        for i, j in enumerate(f):
            if math.hypot((j[0] - x_hat[i][0]) / W, (j[1] - x_hat[i][1]) / H) < thr[i]:
                j[:2] = x_hat[i]
                continue
            for c in range(2):
                if kind == 'oneeuro':
                    d = factor(p['fc_d']) * (j[c] - x_hat[i][c]) + (1 - factor(p['fc_d'])) * dx_hat[i][c]
                    a = factor(p['fc_min'] + p['beta'] * abs(d))
                    dx_hat[i][c] = d
                else:
                    a = p['alpha']
                x_hat[i][c] = j[c] = a * j[c] + (1 - a) * x_hat[i][c]
        out.append(f)
    return np.array(out)


@pytest.mark.parametrize('kind', ['oneeuro', 'ema'])
def test_filter_matches_ppdet_loop(kind):
    rng = np.random.default_rng(1)
    frames = [_kp(100 + np.cumsum(rng.normal(0, 3, (17, 2)), axis=0) + t * 2) for t in range(20)]
    frames[5][3, :2] = frames[4][3, :2] + 0.2  # inside the dead zone: held
    f = KeypointSmoothing(W, H, kind)
    got = np.stack([f(k) for k in frames])
    np.testing.assert_allclose(got, _reference(frames, kind), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got[0], frames[0])  # the first frame passes through
    np.testing.assert_array_equal(got[:, :, 2], 0.9)  # scores untouched


def _jitter(est, true):
    """RMS frame-to-frame motion that the true path does not have (pixels)."""
    return float(np.sqrt(np.mean((np.diff(est, axis=0) - np.diff(true, axis=0)) ** 2)))


@pytest.mark.parametrize('kind', ['oneeuro', 'ema'])
def test_jitter_drops_on_a_moving_skeleton(kind):
    # a skeleton swaying along a smooth path (max 0.8 px/frame) with 2 px Gaussian jitter, 640x480 frames
    rng = np.random.default_rng(0)
    t = np.arange(150)
    path = np.stack([320 + 20 * np.sin(2 * np.pi * t / 150), 240 + 7 * np.sin(4 * np.pi * t / 150)], axis=1)
    true = path[:, None, :] + rng.uniform(-40, 40, (17, 2))[None]
    noisy = true + rng.normal(0, 2.0, true.shape)
    f = KeypointSmoothing(W, H, kind)
    smoothed = np.stack([f(_kp(n))[:, :2] for n in noisy])
    raw, smooth = _jitter(noisy[10:], true[10:]), _jitter(smoothed[10:], true[10:])
    # measured: oneeuro 2.33x, ema 2.45x (ppdet's parameters are mild: about 1.7x at 5 px/frame)
    assert raw / smooth >= 2.0, (raw, smooth)
    # and the smoothed skeleton stays nearer the true one than the raw detections are
    assert np.sqrt(np.mean((smoothed[10:] - true[10:]) ** 2)) < np.sqrt(np.mean((noisy[10:] - true[10:]) ** 2))


@pytest.mark.parametrize('kind, settle', [('oneeuro', 1), ('ema', 5)])
def test_step_is_followed(kind, settle):
    f = KeypointSmoothing(W, H, kind)
    xs = []
    for i in range(30):
        xy = np.tile([100.0 if i < 10 else 200.0, 200.0], (17, 1))
        xs.append(f(_kp(xy))[:, 0])
    xs = np.array(xs)
    # the dead zone (0.01 * 0.3 of the width for body joints: 1.9 px here) is the largest offset left
    assert np.all(np.abs(xs[10 + settle:] - 200) < 0.003 * W), xs[10:10 + settle + 2, 5]
    assert np.all(np.abs(xs[10 + settle - 1] - 200) > 0.003 * W)  # and it does take `settle` frames
    np.testing.assert_array_equal(xs[:10], 100.0)


@pytest.mark.parametrize('kind, lag', [('oneeuro', 2.0), ('ema', 4.5)])
def test_ramp_is_followed_with_bounded_lag(kind, lag):
    f = KeypointSmoothing(W, H, kind)
    truth = [100.0 + 4.0 * i for i in range(40)]  # 4 px / frame
    xs = np.array([f(_kp(np.tile([x, 200.0], (17, 1))))[0, 0] for x in truth])
    # measured steady lag: oneeuro 1.67 px, ema 4 px (alpha 0.5 lags one frame of motion)
    assert np.all(np.abs(xs[10:] - np.array(truth[10:])) < lag)


def test_bad_filter_type():
    with pytest.raises(ValueError, match='filter_type'):
        TrackSmoother(W, H, 'kalman')


def test_track_smoother_keeps_persons_apart():
    sm = TrackSmoother(W, H, 'ema')
    a, b = _kp(np.full((17, 2), 100.0)), _kp(np.full((17, 2), 400.0))
    sm(1, a), sm(2, b)
    out_a = sm(1, _kp(np.full((17, 2), 110.0)))
    np.testing.assert_allclose(out_a[:, :2], 105.0)  # ema with alpha 0.5 of its own previous, not of person 2
    sm.drop([1])
    assert list(sm.filters) == [2]


def _box(cx, cy, w=60, h=120):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_iou():
    np.testing.assert_allclose(box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]), [[1 / 3, 0]])


def test_crossing_boxes_keep_their_ids():
    tr = IoUTracker()
    seen = []
    for t in range(16):  # A runs right, B left, 20 px / frame, in lanes 10 px apart
        a, b = _box(50 + 20 * t, 200), _box(350 - 20 * t, 210)
        if t % 2:  # the detector's order says nothing about who is who
            seen.append(tuple(tr.update([a, b])))
        else:
            seen.append(tuple(tr.update([b, a])[::-1]))
    # at t = 8 B stands where A stood at t = 7 (IoU 0.85, A moved on: IoU 0.5): only A's motion tells them apart
    assert box_iou([_box(190, 200)], [_box(190, 210)])[0, 0] > box_iou([_box(190, 200)], [_box(210, 200)])[0, 0]
    assert set(seen) == {seen[0]} and len(set(seen[0])) == 2, seen


def test_missed_track_comes_back_then_expires():
    tr = IoUTracker(max_missed=3)
    assert tr.update([_box(100, 200), _box(400, 200)]) == [1, 2]
    for _ in range(3):  # person 1 is not detected for 3 frames: still alive
        assert tr.update([_box(400, 200)]) == [2]
    assert tr.update([_box(100, 200), _box(400, 200)]) == [1, 2]
    for _ in range(4):  # now 4 frames: expired at the 4th
        assert tr.update([_box(400, 200)]) == [2]
    assert tr.expired == [1] and sorted(tr.tracks) == [2]
    assert tr.update([_box(100, 200), _box(400, 200)]) == [3, 2]  # ids are never reused
