"""Per-person track ids (greedy IoU tracker) and PaddleDetection's 2022 keypoint smoothing, applied per track.

The smoothing reproduces the math of ``KeypointSmoothing`` in PaddleDetection's
``deploy/python/det_keypoint_unite_infer.py`` (One-Euro or EMA, per joint and coordinate, with a per-joint dead
zone) with the parameters its video loop uses: ``alpha=0.5, fc_d=0.1, fc_min=0.1, beta=0.05, thres_mult=0.3``,
``te=1`` (frames, not seconds: the filter ignores the fps). ppdet smooths only when exactly one person is in the
frame; here every track has its own filter, so several persons are smoothed without mixing their joints.
"""
import math

import numpy as np

__all__ = ['IoUTracker', 'KeypointSmoothing', 'TrackSmoother', 'SMOOTH_TYPES', 'PPDET_SMOOTHING', 'box_iou']

#: ``--smooth-type`` name -> ppdet's ``filter_type``
SMOOTH_TYPES = {'oneeuro': 'OneEuro', 'ema': 'EMA'}

#: the parameters of ppdet's unite script: its class defaults, with ``beta=0.05`` as its video loop passes
PPDET_SMOOTHING = dict(alpha=0.5, fc_d=0.1, fc_min=0.1, beta=0.05, thres_mult=0.3)

#: ppdet's dead zone per COCO joint (fraction of the image size, times ``thres_mult``): the face is held tighter
_DEAD_ZONE = np.array([0.005] * 5 + [0.01] * 12)


def box_iou(a, b):
    """IoU matrix of boxes ``a`` (N, 4) and ``b`` (M, 4), ``[x1, y1, x2, y2]``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class _Track:
    __slots__ = ('id', 'box', 'velocity', 'missed', 'hits')

    def __init__(self, track_id, box):
        self.id, self.box, self.velocity, self.missed, self.hits = track_id, box, np.zeros(4), 0, 1

    def predicted(self):
        # constant velocity through the frames it was missed: crossing persons keep their own ids
        return self.box + self.velocity * (self.missed + 1)


class IoUTracker:
    """Greedy IoU tracker: each frame's boxes take the ids of the tracks they overlap most.

    Pairs (track, box) are taken in decreasing IoU of the box with the track's predicted box (its last box moved
    by its last velocity), above ``iou_threshold``; unmatched boxes start new tracks; a track missed for more than
    ``max_missed`` consecutive frames expires. Ids increase and are never reused, so an id in the output always
    means one person (a person who comes back after expiry gets a new id).

    Args:
        iou_threshold (float): minimum IoU to continue a track.
        max_missed (int): frames a track survives unmatched.
    """

    def __init__(self, iou_threshold=0.3, max_missed=30):
        self.iou_threshold, self.max_missed = float(iou_threshold), int(max_missed)
        self.tracks = {}
        self.expired = []
        self._next_id = 1

    def update(self, boxes):
        """Assign ids to one frame's boxes.

        Args:
            boxes: (N, 4) ``[x1, y1, x2, y2]``.

        Returns:
            list[int]: the track id of each box, in order.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        tracks = list(self.tracks.values())
        ids = [None] * len(boxes)
        if tracks and len(boxes):
            iou = box_iou(np.stack([t.predicted() for t in tracks]), boxes)
            for flat in np.argsort(-iou, axis=None, kind='stable'):
                ti, bi = divmod(int(flat), len(boxes))
                if iou[ti, bi] < self.iou_threshold:
                    break
                if ids[bi] is not None or tracks[ti].missed < 0:
                    continue
                t = tracks[ti]
                t.velocity = (boxes[bi] - t.box) / (t.missed + 1)
                t.box, t.missed, t.hits = boxes[bi], -1, t.hits + 1  # missed -1: matched in this frame
                ids[bi] = t.id
        self.expired = []
        for t in tracks:
            t.missed += 1
            if t.missed > self.max_missed:
                self.expired.append(t.id)
                del self.tracks[t.id]
        for bi, tid in enumerate(ids):
            if tid is None:
                ids[bi] = self._next_id
                self.tracks[self._next_id] = _Track(self._next_id, boxes[bi])
                self._next_id += 1
        return ids


class KeypointSmoothing:
    """One person's keypoint filter, PaddleDetection's math (see the module docstring).

    Per joint: when it moved less than its dead zone (``_DEAD_ZONE * thres_mult``, as a distance normalised by the
    image width / height) from the last filtered position, the last position is kept (and the filter state is
    left as it is); otherwise ``OneEuro``: ``dx_hat = ema(x - x_hat_prev, a(fc_d))``, ``fc = fc_min + beta *
    |dx_hat|`` (pixels / frame, per coordinate), ``x_hat = ema(x, a(fc))`` with ``a(fc) = r / (r + 1)``, ``r = 2
    pi fc te``, ``te = 1``; or ``EMA``: ``x_hat = alpha x + (1 - alpha) x_hat_prev``. The first frame passes
    through. Scores are not changed.

    Args:
        width, height (int): the image size (the dead zone's units).
        filter_type (str): ``'OneEuro'`` / ``'oneeuro'`` or ``'EMA'`` / ``'ema'``.
        alpha, fc_d, fc_min, beta, thres_mult (float): ppdet's parameters (defaults: its unite script's).
    """

    def __init__(self, width, height, filter_type='OneEuro', alpha=0.5, fc_d=0.1, fc_min=0.1, beta=0.05,
                 thres_mult=0.3):
        kind = SMOOTH_TYPES.get(str(filter_type).lower(), filter_type)
        if kind not in SMOOTH_TYPES.values():
            raise ValueError(f'filter_type must be one of {", ".join(SMOOTH_TYPES)}, got {filter_type!r}')
        self.kind, self.size = kind, np.array([width, height], dtype=np.float64)
        self.alpha, self.fc_d, self.fc_min, self.beta = alpha, fc_d, fc_min, beta
        self.threshold = _DEAD_ZONE * thres_mult
        self.x_hat = self.dx_hat = None

    @staticmethod
    def _factor(fc, te=1.0):
        r = 2 * math.pi * fc * te
        return r / (r + 1)

    def __call__(self, keypoints):
        """Smooth one frame's ``(17, 3)`` ``[x, y, score]``; returns a new array (float64)."""
        kp = np.array(keypoints, dtype=np.float64).reshape(-1, 3)
        x = kp[:, :2]
        if self.x_hat is None or len(self.x_hat) != len(x):
            self.x_hat, self.dx_hat = x.copy(), np.zeros_like(x)
            return kp
        dist = np.sqrt(np.sum(np.square((x - self.x_hat) / self.size), axis=1))
        move = dist >= self.threshold[:len(x)]
        if self.kind == 'OneEuro':
            dx_hat = self._factor(self.fc_d) * (x - self.x_hat) + (1 - self._factor(self.fc_d)) * self.dx_hat
            a = self._factor(self.fc_min + self.beta * np.abs(dx_hat))
            self.dx_hat[move] = dx_hat[move]
        else:
            a = self.alpha
        new = a * x + (1 - a) * self.x_hat
        self.x_hat[move] = new[move]
        kp[:, :2] = self.x_hat
        return kp


class TrackSmoother:
    """One :class:`KeypointSmoothing` per track id; filters of expired tracks are dropped.

    Args:
        width, height (int): the frame size.
        filter_type (str): ``'oneeuro'`` or ``'ema'``.
        **params: ppdet's parameters (default :data:`PPDET_SMOOTHING`).
    """

    def __init__(self, width, height, filter_type='oneeuro', **params):
        KeypointSmoothing(width, height, filter_type)  # fail on a bad type now, not at the first person
        self.width, self.height, self.filter_type = width, height, filter_type
        self.params = {**PPDET_SMOOTHING, **params}
        self.filters = {}

    def __call__(self, track_id, keypoints):
        f = self.filters.get(track_id)
        if f is None:
            f = self.filters[track_id] = KeypointSmoothing(self.width, self.height, self.filter_type, **self.params)
        return f(keypoints)

    def drop(self, track_ids):
        for tid in track_ids:
            self.filters.pop(tid, None)
