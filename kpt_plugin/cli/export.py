"""``kpt-plugin export``: PP-TinyPose -> ONNX (BN and channel shuffles folded into the convs; optional fused flip
test and in-graph DARK decode)."""
import os.path as osp
import time

from .outputs import check_writable


def add_parser(subparsers):
    p = subparsers.add_parser(
        'export', help='export the model to ONNX',
        description='Export PP-TinyPose to ONNX. Input "image": (N, 3, H, W) float32 RGB, /255 then ImageNet '
        'mean/std. Output "heatmaps" (N, 17, H/4, W/4). --with-decode adds inputs "center" (N, 2, image px) and '
        '"scale" (N, 2, box size / 200) and the output "keypoints" (N, 17, 3) [x, y, score] in image pixels '
        "(ppdet's DARK decode and back-projection).")
    p.add_argument('--model', default=None, help='zoo name (default PP-TinyPose_128x96 without --weights)')
    p.add_argument('--weights', default=None, help='local weights (.pth, .pdparams, Paddle/OpenVINO/ncnn)')
    p.add_argument('--format', default='onnx', choices=['onnx'], help='export format (onnx)')
    p.add_argument('-o', '--out', required=True, help='output file (.onnx)')
    p.add_argument('--dynamic-batch', action='store_true', help='dynamic batch dimension (default: fixed)')
    p.add_argument('--batch-size', type=int, default=1, help='fixed batch size without --dynamic-batch')
    p.add_argument('--flip', action='store_true', help="fuse ppdet's flip test into the graph")
    p.add_argument('--with-decode', action='store_true', help='include the DARK decode + back-projection')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset, 13 to 20 (default 17)')
    p.add_argument('--runtime', default='onnxruntime', choices=['onnxruntime', 'openvino'],
                   help='the runtime to tune the folded graph for (same function; default onnxruntime)')
    p.add_argument('--no-fold-shuffles', action='store_true',
                   help='keep the channel shuffles as Split/Concat/Transpose nodes (slower; for debugging)')
    p.set_defaults(func=run)
    return p


def run(args):
    from kpt_plugin.errors import KptError
    from kpt_plugin.inference.nets import build_pose_model
    from kpt_plugin.inference.onnx_export import export_onnx
    from kpt_plugin.zoo import resolve_checkpoint

    if not args.out.lower().endswith('.onnx'):
        raise KptError(f'{args.out}: the output must end with .onnx')
    if args.batch_size < 1:
        raise KptError(f'--batch-size must be >= 1, got {args.batch_size}')
    if not 13 <= args.opset <= 20:
        # below 13 the exporter lacks ops of this graph (and dumps it on failure); above 20 torch cannot write
        raise KptError(f'--opset {args.opset}: choose 13 to 20 (default 17)')
    check_writable(osp.dirname(osp.abspath(args.out)), f'-o {args.out}: the folder')
    name = args.model or (None if args.weights else 'PP-TinyPose_128x96')
    t0 = time.perf_counter()
    config, ckpt = resolve_checkpoint(name=name, weights=args.weights)
    model = build_pose_model(config, ckpt)
    input_size = tuple(model.cfg.codec['input_size'])
    try:
        export_onnx(model, args.out, input_size, flip=args.flip, dynamic_batch=args.dynamic_batch,
                    with_decode=args.with_decode, opset=args.opset, batch_size=args.batch_size,
                    fold_shuffles=not args.no_fold_shuffles, runtime=args.runtime)
    except OSError as e:
        raise KptError(f'{args.out}: cannot write the model ({e.strerror or e}); check the folder and free disk '
                       'space') from None
    print(f'{osp.basename(ckpt)} ({input_size[1]}x{input_size[0]}) -> {args.out} in {time.perf_counter() - t0:.1f} s '
          f'(opset {args.opset}, batch {"dynamic" if args.dynamic_batch else args.batch_size}, flip '
          f'{"fused" if args.flip else "off"}, decode {"in graph" if args.with_decode else "off"}, for {args.runtime})')
    return 0


