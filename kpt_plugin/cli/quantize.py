"""``kpt-plugin quantize``: int8 ONNX (ONNX Runtime static quantization, QDQ) of PP-TinyPose, calibrated on person
crops that our own preprocessing makes from your images."""
import os.path as osp
import time

from .outputs import check_writable


def add_parser(subparsers):
    p = subparsers.add_parser(
        'quantize', help='int8 ONNX model calibrated on your images',
        description='Export the fp32 graph, equalise depthwise inputs (exact) and quantise it statically to int8 '
        '(QDQ; per-channel weights; the heatmap head stays fp32), calibrated on crops of the images in --calib: '
        'a folder with a COCO annotation json gives one crop per annotated person, other images are one '
        'whole-image crop each. Run the result with --backend onnxruntime/openvino via onnx_path. Accuracy '
        'and speed: docs/precision.md.')
    p.add_argument('--calib', nargs='+', default=None, metavar='DIR',
                   help='calibration image folders (default: the documented set under ../shared/data, when there)')
    p.add_argument('--model', default=None, help='zoo name (default PP-TinyPose_128x96 without --weights)')
    p.add_argument('--weights', default=None, help='local weights (.pth, .pdparams, Paddle/OpenVINO/ncnn)')
    p.add_argument('-o', '--out', required=True, help='output file (.onnx)')
    p.add_argument('--batch-size', type=int, default=1, help='fixed batch size of the graph (default 1)')
    p.add_argument('--flip', action='store_true', help="fuse ppdet's flip test into the graph")
    p.add_argument('--geometry', choices=['paddlex', 'ppdet'], default='paddlex',
                   help='the crop geometry of the calibration crops (default paddlex)')
    p.set_defaults(func=run)
    return p


def run(args):
    import tempfile

    from kpt_plugin.errors import KptError
    from kpt_plugin.inference.geometry import make_geometry
    from kpt_plugin.inference.nets import build_pose_model
    from kpt_plugin.inference.onnx_export import export_onnx
    from kpt_plugin.inference.quantize import calibration_crops, default_calibration, quantize_onnx
    from kpt_plugin.zoo import resolve_checkpoint

    if not args.out.lower().endswith('.onnx'):
        raise KptError(f'{args.out}: the output must end with .onnx')
    if args.batch_size < 1:
        raise KptError(f'--batch-size must be >= 1, got {args.batch_size}')
    check_writable(osp.dirname(osp.abspath(args.out)), f'-o {args.out}: the folder')
    folders = args.calib or default_calibration()
    name = args.model or (None if args.weights else 'PP-TinyPose_128x96')
    t0 = time.perf_counter()
    config, ckpt = resolve_checkpoint(name=name, weights=args.weights)
    model = build_pose_model(config, ckpt)
    input_size = tuple(model.cfg.codec['input_size'])
    crops = calibration_crops(make_geometry(args.geometry, input_size, None), folders)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, osp.join(tmp, 'fp32.onnx'), input_size, flip=args.flip, dynamic_batch=False,
                           batch_size=args.batch_size)
        try:
            quantize_onnx(fp32, args.out, crops)
        except OSError as e:
            raise KptError(f'{args.out}: cannot write the model ({e.strerror or e}); check the folder and free '
                           'disk space') from None
        diff = _heatmap_diff(fp32, args.out, crops, args.batch_size)
    print(f'{osp.basename(ckpt)} ({input_size[1]}x{input_size[0]}) -> {args.out} (int8 QDQ, batch '
          f'{args.batch_size}, flip {"fused" if args.flip else "off"}) calibrated on {len(crops)} crops from '
          f'{", ".join(folders)} in {time.perf_counter() - t0:.1f} s; heatmaps vs fp32 on those crops: max '
          f'{diff[0]:.3g}, mean {diff[1]:.3g}')
    return 0


def _heatmap_diff(fp32, int8, crops, batch):
    import numpy as np
    import onnxruntime as ort
    n = len(crops) // batch * batch or batch
    x = crops[np.arange(n) % len(crops)]
    outs = []
    for path in (fp32, int8):
        sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
        outs.append(np.concatenate([sess.run(None, {'image': x[i:i + batch]})[0] for i in range(0, n, batch)]))
    d = np.abs(outs[0] - outs[1])
    return float(d.max()), float(d.mean())
