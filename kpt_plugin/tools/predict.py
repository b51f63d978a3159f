"""``kpt-plugin predict``: keypoints for images, directories, URLs; json + drawn image per input."""
import os.path as osp
import sys
import time


def add_parser(subparsers):
    p = subparsers.add_parser(
        'predict', help='predict keypoints (json + drawn image per input)',
        description='Predict COCO-17 keypoints with PP-TinyPose. Without --bboxes the whole image is one person. '
        'Writes <stem>_res.json and <stem>_res.<ext> per input into --save-dir; inputs that fail are listed at '
        'the end (exit code 1 when any failed).')
    p.add_argument('inputs', nargs='+', metavar='INPUT', help='image file, directory, or http(s) URL')
    p.add_argument('--model', default=None, help='zoo name (default: PP-TinyPose_128x96 unless --weights records '
                   'its architecture)')
    p.add_argument('--weights', default=None, help='local weights: .pth, .pdparams, Paddle inference dir, '
                   'OpenVINO IR, ncnn .param')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N, gpu, gpu:N, npu, npu:N (default: best '
                   'available)')
    p.add_argument('--flip', action='store_true', help="ppdet's flip test (fused into the batch)")
    p.add_argument('--batch-size', type=int, default=1, help='images per forward pass (default 1)')
    p.add_argument('--bboxes', default=None, help='person boxes: COCO detection json, or {file name: [[x1, y1, '
                   'x2, y2, (score)], ...]} json')
    p.add_argument('--save-dir', default='./output', help='output folder (default ./output)')
    p.add_argument('--backend', choices=['torch', 'onnxruntime', 'openvino', 'hpip'], default='torch',
                   help='inference backend: torch (default), onnxruntime or openvino on our folded graph, or hpip = '
                   'the high-performance choice for the device (use_hpip=True: openvino on cpu when installed)')
    p.add_argument('--no-img', action='store_true', help='write the json only')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)
    return p


def run(args):
    from kpt_plugin.cli import CLIError
    from kpt_plugin.apis import DeviceError, InputError, WeightsError, create_model
    from kpt_plugin.apis.inputs import expand_inputs
    from kpt_plugin.zoo import ZooError

    if args.batch_size < 1:
        raise CLIError(f'--batch-size must be >= 1, got {args.batch_size}')
    model_name = args.model
    if model_name is None and args.weights is None:
        model_name = 'PP-TinyPose_128x96'
    t0 = time.perf_counter()
    try:
        model = create_model(model_name, model_dir=args.weights, device=args.device, flip=args.flip,
                             backend='auto' if args.backend == 'hpip' else args.backend)
    except (ZooError, DeviceError, WeightsError, FileNotFoundError, ValueError, RuntimeError) as e:
        raise CLIError(str(e)) from None
    load_s = time.perf_counter() - t0
    try:
        items = expand_inputs(args.inputs)
        bboxes = args.bboxes
        if bboxes is not None:
            from kpt_plugin.apis.inputs import read_boxes_file
            bboxes = read_boxes_file(bboxes)
        results = model.predict(list(args.inputs), batch_size=args.batch_size, bboxes=bboxes)
        bar = None
        if not args.quiet and len(items) > 1 and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(total=len(items), unit='img', file=sys.stderr)
        done, failed = 0, []
        for res in results:
            name = res.get('input_path') or res._name
            if not res.ok:
                failed.append((name, res['error']))
            else:
                try:
                    res.save_to_json(args.save_dir)
                    if not args.no_img:
                        res.save_to_img(args.save_dir)
                    done += 1
                except (OSError, ValueError) as e:
                    failed.append((name, f'cannot write output: {e}'))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    except InputError as e:
        raise CLIError(str(e)) from None
    total = time.perf_counter() - t0
    tm = model.timings
    print(f'done: {done} image(s), {tm["instances"]} person(s) -> {osp.abspath(args.save_dir)}; failed: '
          f'{len(failed)}; {total:.2f} s (model load {load_s:.2f} s, read {tm["load"]:.2f} s, preprocess '
          f'{tm["preprocess"]:.2f} s, network {tm["model"]:.2f} s, postprocess {tm["postprocess"]:.2f} s)')
    for name, reason in failed:
        print(f'  failed: {reason}' if str(reason).startswith(str(name)) else f'  failed: {name}: {reason}')
    return 1 if failed else 0
