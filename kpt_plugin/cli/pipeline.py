"""``kpt-plugin pipeline``: PicoDet pedestrian -> PP-TinyPose on images, videos and cameras.

Images: ``<stem>_res.json`` + ``<stem>_res.<ext>`` each (PaddleX's names). Videos (by extension) and camera indices:
``<stem>_res.mp4`` (annotated, track ids drawn) + ``<stem>_res.jsonl`` (one JSON line per frame), see
:mod:`kpt_plugin.inference.video`.
"""
import os.path as osp
import sys
import time

from .options import BACKENDS, add_precision_args, backend_of

VIDEO_HELP = 'video file (.mp4 .avi .mov .mkv .webm) or camera index (0, 1, ...)'


def add_parser(subparsers):
    p = subparsers.add_parser(
        'pipeline', help='detect persons and their keypoints in images, videos, cameras',
        description='Human keypoint pipeline (PaddleX human_keypoint_detection): PicoDet pedestrian finds the '
        'persons, PP-TinyPose their keypoints. Images -> <stem>_res.json + <stem>_res.<ext>; videos and cameras -> '
        '<stem>_res.mp4 (annotated, with track ids) + <stem>_res.jsonl (one JSON line per frame), into --save-dir. '
        'Ctrl-C stops cleanly (the video so far is kept). Exit code 1 when any input failed.')
    p.add_argument('inputs', nargs='+', metavar='INPUT', help=f'image file, directory, http(s) URL, {VIDEO_HELP}')
    p.add_argument('--det-model', default=None, help='detector name (default PicoDet-S_pedestrian_320; also '
                   'PicoDet-S_pedestrian_192)')
    p.add_argument('--kpt-model', default=None, help='keypoint model name (default PP-TinyPose_128x96)')
    p.add_argument('--det-weights', default=None, help='local detector weights (any form the converter reads)')
    p.add_argument('--kpt-weights', default=None, help='local keypoint weights (.pth, .pdparams, Paddle inference '
                   'dir, OpenVINO IR, ncnn .param)')
    p.add_argument('--det-threshold', type=float, default=None, help='detector score threshold (default 0.5)')
    p.add_argument('--save-dir', default='./output', help='output folder (default ./output)')
    p.add_argument('--backend', choices=BACKENDS, default='torch',
                   help='keypoint backend: torch (default), onnxruntime, openvino, or hpip (the fastest for the '
                   'device); on cpu the detector runs on the same graph runtime')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N, gpu, gpu:N, npu, npu:N (default: best '
                   'available)')
    add_precision_args(p)
    p.add_argument('--flip', action='store_true', help='keypoint flip test')
    p.add_argument('--batch-size', type=int, default=1, help='images (or video frames) per pass (default 1)')
    p.add_argument('--smooth', action='store_true', help="videos: smooth each person's keypoints over time "
                   "(PaddleDetection's filter and parameters, per track)")
    p.add_argument('--smooth-type', choices=['oneeuro', 'ema'], default='oneeuro',
                   help='--smooth filter: oneeuro (default, as PaddleDetection) or ema')
    p.add_argument('--camera-frames', type=int, default=None, metavar='N',
                   help='cameras: stop after N frames (default: run until Ctrl-C)')
    p.add_argument('--frames-as-video', action='store_true',
                   help='a directory INPUT is one video of its images (sorted), not separate images')
    p.add_argument('--fps', type=float, default=None, help='fps of --frames-as-video folders (default 25), or '
                   'override a video\'s')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs in --save-dir (default: an '
                   'input whose output exists fails, unless the file is its own result from an earlier run)')
    p.add_argument('--progress', action='store_true', help='progress bar on stderr even when it is not a terminal')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)
    return p


def _check_options(args):
    from kpt_plugin.errors import KptError
    if args.batch_size < 1:
        raise KptError(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.det_threshold is not None and not 0 <= args.det_threshold <= 1:
        raise KptError(f'--det-threshold must be in [0, 1], got {args.det_threshold}')
    if args.camera_frames is not None and args.camera_frames < 1:
        raise KptError(f'--camera-frames must be >= 1, got {args.camera_frames}')
    if args.fps is not None and not args.fps > 0:
        raise KptError(f'--fps must be > 0, got {args.fps}')


def run(args):
    from kpt_plugin.cli.outputs import check_writable
    from kpt_plugin.inference import pipeline as pipeline_mod
    from kpt_plugin.inference.video import camera_index, is_video_input

    _check_options(args)
    check_writable(args.save_dir, '--save-dir')  # before the models load: fails in a second, not after
    videos, images = [], []
    for x in args.inputs:
        as_video = is_video_input(x) or (args.frames_as_video and osp.isdir(x))
        (videos if as_video else images).append(x)
    t0 = time.perf_counter()
    pipe = pipeline_mod.create_pipeline(
        'human_keypoint_detection', det_model=args.det_model, kpt_model=args.kpt_model,
        det_threshold=args.det_threshold, flip=args.flip, device=args.device, det_model_dir=args.det_weights,
        kpt_model_dir=args.kpt_weights, batch_size=args.batch_size, backend=backend_of(args),
        precision=args.precision, calib=args.calib)
    load_s = time.perf_counter() - t0
    progress = False if args.quiet else (True if args.progress else None)
    st = dict(images=0, videos=0, frames=0, persons=0, failed=[], written={}, interrupted=None)
    try:
        if images:
            _run_images(pipe, images, args, st, progress)
        for src in videos:
            if st['interrupted'] is not None:
                break
            max_frames = args.camera_frames if camera_index(src) is not None else None
            _run_one_video(pipe, src, args, st, progress, max_frames)
    except KeyboardInterrupt:
        st['interrupted'] = 'images'
    total = time.perf_counter() - t0
    stop = ' (interrupted by Ctrl-C)' if st['interrupted'] is not None else ''
    print(f'done: {st["images"]} image(s), {st["videos"]} video(s) ({st["frames"]} frame(s)), {st["persons"]} '
          f'person(s) -> {osp.abspath(args.save_dir)}; failed: {len(st["failed"])}; {total:.2f} s (model load '
          f'{load_s:.2f} s){stop}')
    for name, reason in st['failed']:
        print(f'  failed: {reason}' if str(reason).startswith(str(name)) else f'  failed: {name}: {reason}')
    if st['failed']:
        return 1
    # Ctrl-C is how a camera run ends; elsewhere it leaves outputs unfinished, which the exit code says
    return 130 if st['interrupted'] not in (None, 'camera') else 0


def _run_images(pipe, images, args, st, progress):
    from kpt_plugin.cli.outputs import save_result
    from kpt_plugin.inference.inputs import expand_inputs
    bar = None
    n = len(expand_inputs(images))
    if progress or (progress is None and n > 1 and sys.stderr.isatty()):
        from tqdm import tqdm
        bar = tqdm(total=n, unit='img', file=sys.stderr)
    try:
        for res in pipe.predict(images, batch_size=args.batch_size):
            name = res.get('input_path') or res._name
            reason = res['error'] if not res.ok else save_result(
                res, args.save_dir, True, st['written'], name, overwrite=args.overwrite, option='--overwrite')
            if reason:
                st['failed'].append((name, reason))
            else:
                st['images'] += 1
                st['persons'] += len(res['boxes'])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _run_one_video(pipe, src, args, st, progress, max_frames):
    from kpt_plugin.errors import BackendError, InputError
    from kpt_plugin.inference.video import camera_index, output_stem, run_video
    stem = output_stem(src)
    targets = [osp.abspath(osp.join(args.save_dir, f'{stem}_res{ext}')) for ext in ('.mp4', '.jsonl')]
    clash = next((t for t in targets if t in st['written']), None)
    if clash:
        st['failed'].append((src, f'output {clash} would overwrite the result of {st["written"][clash]}; give the '
                             'inputs distinct names or run them with separate --save-dir'))
        return
    try:
        out = run_video(pipe, src, args.save_dir, batch_size=args.batch_size, smooth=args.smooth,
                        smooth_type=args.smooth_type, max_frames=max_frames, fps=args.fps, progress=progress,
                        overwrite=args.overwrite)
    except (InputError, BackendError) as e:
        st['failed'].append((src, str(e)))
        return
    for t in targets:
        st['written'][t] = src
    st['videos'] += 1
    st['frames'] += out['frames']
    st['persons'] += out['persons']
    if out['interrupted']:
        st['interrupted'] = 'camera' if camera_index(src) is not None else 'video'
    stop = ' (interrupted)' if out['interrupted'] else ''
    print(f'{src}: {out["frames"]} frame(s), {out["persons"]} person(s), {out["tracks"]} track(s), '
          f'{out["fps"]:.1f} frame/s -> {out["video"] or "(no video: no frame)"}, {out["jsonl"]}{stop}')
    for reason in out['skipped']:
        st['failed'].append((src, f'frame skipped: {reason}'))
    if out['failed_frames']:
        st['failed'].append((src, f'{out["failed_frames"]} frame(s) failed (see "error" in {out["jsonl"]})'))
