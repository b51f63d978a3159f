"""Video through the keypoint pipeline: a video file, a camera or a folder of frames -> annotated video + JSON lines.

Outputs in ``save_dir``: ``<stem>_res.mp4`` (mp4v, the source's fps and frame size; written under a hidden
temporary name and renamed when finalised, so a half-written file never carries the final name) and
``<stem>_res.jsonl``, one strict-JSON line per frame, flushed as it is written (a crash or Ctrl-C keeps every line
written): ``{"frame": i, "time": s, "persons": [{"track_id", "bbox", "det_score", "keypoints", "kpt_score"}]}``.
Ctrl-C stops the loop, finalises both files and returns the summary with ``interrupted=True``. Existing outputs
are never replaced unless ``overwrite=True`` (a rerun would otherwise silently drop an earlier, maybe longer, run).
"""
import json
import math
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np

from ..errors import BackendError, InputError
from .draw import PALETTE, draw_skeletons
from .inputs import IMAGE_EXTS, expand_inputs, load_image
from .tracking import IoUTracker, TrackSmoother

__all__ = ['VIDEO_EXTS', 'FrameSource', 'camera_index', 'is_video_input', 'output_stem', 'run_video']

VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')
#: fps of a frame folder, or of a stream that reports none
DEFAULT_FPS = 25.0


def camera_index(source):
    """The camera index ``source`` names (an int, or a digit string that is not an existing path), else None."""
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return int(source)
    if isinstance(source, str) and source.isdigit() and not osp.exists(source):
        return int(source)
    return None


def is_video_input(source):
    """True for a camera index or a path with a video extension (:data:`VIDEO_EXTS`)."""
    if camera_index(source) is not None:
        return True
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(VIDEO_EXTS)


def output_stem(source):
    """The stem of ``source``'s outputs: the file's stem, ``camera<N>`` or the folder's name."""
    cam = camera_index(source)
    if cam is not None:
        return f'camera{cam}'
    path = os.fspath(source)
    return osp.basename(osp.normpath(path)) if osp.isdir(path) else osp.splitext(osp.basename(path))[0]


class FrameSource:
    """Frames (BGR uint8) of a video file, a camera index or a folder of images (sorted by name).

    Attributes:
        kind (str): ``'video'``, ``'camera'`` or ``'frames'``.
        stem (str): output name stem (file stem, ``camera<N>``, folder name).
        fps (float): the source's fps (``fps`` argument for folders and streams that report none).
        total (int | None): frame count when known.
        skipped (list[str]): unreadable frames of a folder (skipped, with their reason).
    """

    def __init__(self, source, fps=None):
        self.source, self.skipped, self._cap, self._items = source, [], None, None
        self.stem = output_stem(source)
        cam = camera_index(source)
        if cam is not None:
            self.kind, self.total = 'camera', None
            self._open_capture(cam, f'camera {cam}', fps)
            return
        path = os.fspath(source)
        if osp.isdir(path):
            self.kind = 'frames'
            self._items = [it for it in expand_inputs(path) if it.error is None][::-1]
            if not self._items:
                raise InputError(f'{path}: folder holds no frames ({", ".join(IMAGE_EXTS)})')
            self.total, self.fps = len(self._items), float(fps or DEFAULT_FPS)
            return
        if not osp.isfile(path):
            raise InputError(f'{path}: no such file; give a video file, a camera index or a folder of frames')
        self.kind = 'video'
        self._open_capture(path, path, fps)
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = n if n > 0 else None

    def _open_capture(self, what, name, fps):
        self._cap = cv2.VideoCapture(what)
        if not self._cap.isOpened():
            self._cap.release()
            raise InputError(f'{name}: OpenCV cannot open it (not a video, unsupported codec, or no such camera)')
        reported = self._cap.get(cv2.CAP_PROP_FPS)
        # streams report 0, nan or absurd values when they do not know
        self.fps = float(fps or (reported if math.isfinite(reported) and 0 < reported <= 1000 else DEFAULT_FPS))

    def read(self):
        """The next frame, or None at the end."""
        if self._cap is not None:
            ok, frame = self._cap.read()
            return frame if ok else None
        while self._items:
            item = self._items.pop()
            try:
                return load_image(item)
            except InputError as e:
                self.skipped.append(str(e))
        return None

    def close(self):
        if self._cap is not None:
            self._cap.release()


def _plain(v):
    """JSON-ready copy of ``v``; non-finite floats become null, so every line is strict JSON."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _annotate(frame, persons):
    canvas = draw_skeletons(frame, [p['keypoints'] for p in persons])
    thick = max(1, round(max(frame.shape[:2]) / 640))
    for p in persons:
        if None in p['bbox']:  # a non-finite box (made null for the JSON line)
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in p['bbox'])
        color = PALETTE[p['track_id'] % len(PALETTE)]
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thick)
        cv2.putText(canvas, f"#{p['track_id']}", (x1 + 2, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, color, thick, cv2.LINE_AA)
    return canvas


class _Writer:
    """mp4v writer opened at the first frame (its size is the video's), under a temporary name until closed."""

    def __init__(self, path, fps):
        self.path, self.fps, self.size, self._w, self.frames = path, fps, None, None, 0
        stem, ext = osp.splitext(path)
        self.tmp = osp.join(osp.dirname(path), f'.{osp.basename(stem)}.partial{ext}')

    def write(self, frame):
        if self._w is None:
            self.size = (frame.shape[1], frame.shape[0])
            self._w = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*'mp4v'), self.fps, self.size)
            if not self._w.isOpened():
                self._w = None
                raise BackendError(f'{self.path}: OpenCV cannot write mp4v video here (its FFmpeg backend is '
                                   'missing?); install opencv-python')
        if (frame.shape[1], frame.shape[0]) != self.size:  # a folder of frames of mixed sizes
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._w.write(frame)
        self.frames += 1

    def close(self):
        """Finalise and rename; returns the video path, or None when no frame was written."""
        if self._w is None:
            return None
        self._w.release()  # writes the mp4 index: without it the file does not play
        self._w = None
        os.replace(self.tmp, self.path)
        return self.path


def run_video(pipeline, source, save_dir, *, batch_size=1, det_threshold=None, smooth=False,
              smooth_type='oneeuro', max_frames=None, fps=None, progress=None, iou_threshold=0.3, max_missed=30,
              overwrite=False):
    """Run ``pipeline`` over the frames of ``source``; write the annotated video and the JSON lines.

    Args:
        pipeline: a :class:`~kpt_plugin.inference.pipeline.KeypointPipeline` (or anything whose
            ``predict(frames, batch_size=, det_threshold=)`` yields one result with ``boxes`` per frame).
        source: a video file, a camera index (int or digit string) or a folder of frames.
        save_dir (str): output folder (created).
        batch_size (int): frames per pipeline pass.
        det_threshold (float, optional): the detector threshold (default: the pipeline's).
        smooth (bool): smooth each track's keypoints (PaddleDetection's filters, see :mod:`.tracking`).
        smooth_type (str): ``'oneeuro'`` or ``'ema'``.
        max_frames (int, optional): stop after this many frames (a camera runs until Ctrl-C otherwise).
        fps (float, optional): override the source's fps (folders: default 25).
        progress (bool, optional): tqdm bar on stderr; default: when stderr is a terminal.
        iou_threshold, max_missed: the :class:`~.tracking.IoUTracker`'s.
        overwrite (bool): replace existing ``<stem>_res.mp4`` / ``.jsonl`` (refused otherwise).

    Returns:
        dict: ``video``, ``jsonl`` (paths), ``frames``, ``persons``, ``tracks``, ``failed_frames``, ``skipped``,
        ``interrupted``, ``seconds``, ``fps`` (frames processed per second).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f'batch_size must be a positive integer, got {batch_size!r}')
    src = FrameSource(source, fps=fps)
    video_path = osp.join(save_dir, f'{src.stem}_res.mp4')
    jsonl_path = osp.abspath(osp.join(save_dir, f'{src.stem}_res.jsonl'))
    existing = [p for p in (video_path, jsonl_path) if osp.lexists(p)]
    if existing and not overwrite:
        src.close()
        raise InputError(f'{source}: {osp.abspath(existing[0])} already exists (an earlier run?); pass '
                         '--overwrite (overwrite=True) to replace it, remove it or choose another save dir')
    os.makedirs(save_dir, exist_ok=True)
    writer = _Writer(video_path, src.fps)
    tracker = IoUTracker(iou_threshold, max_missed)
    smoother = None
    total = src.total if max_frames is None else min(src.total or max_frames, max_frames)
    bar = None
    if progress or (progress is None and sys.stderr.isatty()):
        from tqdm import tqdm
        bar = tqdm(total=total, unit='frame', file=sys.stderr, desc=src.stem)
    stats = dict(frames=0, persons=0, failed_frames=0, interrupted=False)
    t0 = time.perf_counter()
    try:
        with open(jsonl_path, 'w', encoding='utf-8') as out:
            try:
                while max_frames is None or stats['frames'] < max_frames:
                    n = batch_size if max_frames is None else min(batch_size, max_frames - stats['frames'])
                    frames, stamps = [], []
                    while len(frames) < n:
                        frame = src.read()
                        if frame is None:
                            break
                        i = stats['frames'] + len(frames)
                        stamps.append(time.perf_counter() - t0 if src.kind == 'camera' else i / src.fps)
                        frames.append(frame)
                    if not frames:
                        break
                    results = pipeline.predict(frames, batch_size=len(frames), det_threshold=det_threshold)
                    for frame, stamp, res in zip(frames, stamps, results):
                        if smoother is None and smooth:
                            smoother = TrackSmoother(frame.shape[1], frame.shape[0], smooth_type)
                        line = _frame_record(stats['frames'], stamp, res, tracker, smoother)
                        writer.write(_annotate(frame, line['persons']))
                        out.write(json.dumps(line, allow_nan=False) + '\n')
                        out.flush()
                        stats['frames'] += 1
                        stats['persons'] += len(line['persons'])
                        stats['failed_frames'] += 'error' in line
                        if bar is not None:
                            bar.update(1)
            except KeyboardInterrupt:
                stats['interrupted'] = True
    finally:
        if bar is not None:
            bar.close()
        src.close()
        video = writer.close()
    seconds = time.perf_counter() - t0
    return dict(source=source, video=video and osp.abspath(video), jsonl=jsonl_path, tracks=tracker._next_id - 1,
                skipped=src.skipped, seconds=seconds, fps=stats['frames'] / seconds if seconds > 0 else 0.0,
                **stats)


def _frame_record(index, stamp, res, tracker, smoother):
    """One JSON line: tracked (and smoothed) persons of one pipeline result."""
    boxes = [] if res.get('error') else list(res.get('boxes') or [])
    ids = tracker.update([b['coordinate'] for b in boxes])
    if smoother is not None:
        smoother.drop(tracker.expired)
    persons = []
    for tid, b in zip(ids, boxes):
        kps = np.asarray(b['keypoints'], dtype=np.float64).reshape(-1, 3)
        if smoother is not None:
            kps = smoother(tid, kps)
        persons.append(dict(track_id=int(tid), bbox=[float(v) for v in b['coordinate']],
                            det_score=float(b['det_score']), keypoints=kps.tolist(),
                            kpt_score=float(b['kpt_score'])))
    line = dict(frame=index, time=round(float(stamp), 6), persons=persons)
    if res.get('error'):
        line['error'] = str(res['error'])
    return _plain(line)
