"""``kpt-plugin predict``: keypoints for images, directories, URLs; json + drawn image per input."""
import os.path as osp
import sys
import time

from .options import BACKENDS, add_precision_args, backend_of
from .outputs import check_writable, save_result


def add_parser(subparsers):
    p = subparsers.add_parser(
        'predict', help='predict keypoints (json + drawn image per input)',
        description='Predict COCO-17 keypoints with PP-TinyPose. Without --bboxes the whole image is one person. '
        'Writes <stem>_res.json and <stem>_res.<ext> per input into --save-dir; inputs that fail are listed at '
        'the end (exit code 1 when any failed). An input never overwrites another input\'s result: a later input '
        'with the same output name fails, and an existing file is replaced only when it is the result of the same '
        'input (a rerun) or with --overwrite.')
    p.add_argument('inputs', nargs='+', metavar='INPUT', help='image file, directory, or http(s) URL')
    p.add_argument('--model', default=None, help='zoo name (default: PP-TinyPose_128x96 unless --weights records '
                   'its architecture)')
    p.add_argument('--weights', default=None, help='local weights: .pth, .pdparams, Paddle inference dir, '
                   'OpenVINO IR, ncnn .param')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N, gpu, gpu:N, npu, npu:N (default: best '
                   'available)')
    p.add_argument('--flip', action='store_true', help='flip test (fused into the batch)')
    p.add_argument('--geometry', choices=['paddlex', 'ppdet'], default='paddlex',
                   help="crop geometry: paddlex (PaddleX's module and pipeline, default) or ppdet "
                   "(PaddleDetection's evaluation: UDP crop, as tools/test.py)")
    p.add_argument('--batch-size', type=int, default=1, help='images per forward pass (default 1)')
    p.add_argument('--bboxes', default=None, help='person boxes: COCO detection results json, COCO annotation '
                   'json (its bboxes), or {file name: [[x1, y1, x2, y2, (score)], ...]} json')
    p.add_argument('--bbox-thr', type=float, default=None, help='drop boxes whose score is below this')
    p.add_argument('--save-dir', default='./output', help='output folder (default ./output)')
    p.add_argument('--overwrite', action='store_true', help='replace existing output files even when they are not '
                   'the result of the same input (default: such an input fails, the file is kept)')
    p.add_argument('--backend', choices=BACKENDS, default='torch',
                   help='inference backend: torch (default), onnxruntime or openvino on our folded graph, or hpip = '
                   'the high-performance choice for the device (use_hpip=True: openvino on cpu when installed)')
    add_precision_args(p)
    p.add_argument('--no-img', action='store_true', help='write the json only')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)
    return p


def run(args):
    from kpt_plugin.errors import KptError
    from kpt_plugin.inference.inputs import check_boxes_match, check_limits, expand_inputs, read_boxes_file
    from kpt_plugin.inference.predictor import create_model

    if args.batch_size < 1:
        raise KptError(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.bbox_thr is not None and not 0 <= args.bbox_thr <= 1:
        raise KptError(f'--bbox-thr must be in [0, 1], got {args.bbox_thr}')
    # everything that can fail without the model fails before it loads
    check_limits()
    check_writable(args.save_dir, '--save-dir')
    items = expand_inputs(args.inputs)
    bboxes = read_boxes_file(args.bboxes) if args.bboxes is not None else None
    if bboxes is not None:
        check_boxes_match(items, bboxes)
    model_name = args.model
    if model_name is None and args.weights is None:
        model_name = 'PP-TinyPose_128x96'
    t0 = time.perf_counter()
    model = create_model(model_name, model_dir=args.weights, device=args.device, flip=args.flip,
                         backend=backend_of(args), geometry=args.geometry, precision=args.precision, calib=args.calib)
    load_s = time.perf_counter() - t0
    results = model.predict(list(args.inputs), batch_size=args.batch_size, bboxes=bboxes, bbox_thr=args.bbox_thr)
    bar = None
    if not args.quiet and len(items) > 1 and sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=len(items), unit='img', file=sys.stderr)
    done, persons, written = 0, 0, {}
    # entries of the boxes file that belong to no image were skipped: the run says so and exits 1
    failed = [(args.bboxes, p) for p in getattr(bboxes, 'problems', ())]
    for res in results:
        name = res.get('input_path') or res._name
        if not res.ok:
            failed.append((name, res['error']))
        else:
            reason = save_result(res, args.save_dir, not args.no_img, written, name, overwrite=args.overwrite,
                                 option='--overwrite')
            if reason:
                failed.append((name, reason))
            else:
                done += 1
                persons += len(res['kpts'])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    total = time.perf_counter() - t0
    tm = model.timings
    print(f'done: {done} image(s), {persons} person(s) -> {osp.abspath(args.save_dir)}; failed: '
          f'{len(failed)}; {total:.2f} s (model load {load_s:.2f} s, read {tm["load"]:.2f} s, preprocess '
          f'{tm["preprocess"]:.2f} s, network {tm["model"]:.2f} s, postprocess {tm["postprocess"]:.2f} s)')
    for name, reason in failed:
        line = f'  failed: {reason}' if str(reason).startswith(str(name)) else f'  failed: {name}: {reason}'
        # file names with bytes that are not UTF-8 (surrogates in Python) must not crash the summary
        print(line.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace'))
    return 1 if failed else 0

