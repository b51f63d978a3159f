"""``kpt-plugin convert``: weights of any supported format -> MMPose checkpoint, or back to ``.pdparams``."""
import sys

FORMATS_HELP = ('.pth, .pdparams, Paddle inference dir/model (model.json or model.pdmodel + model.pdiparams), '
                'OpenVINO IR (dir or model.xml + model.bin), ncnn (.param + .bin)')


def add_parser(subparsers):
    from kpt_plugin.zoo import ARCHS, list_models
    p = subparsers.add_parser(
        'convert', help='convert PP-TinyPose weights into an MMPose checkpoint (or back to .pdparams)',
        description='Convert PP-TinyPose weights into an mmengine checkpoint that our MMPose configs load. '
        f'SRC may be: {FORMATS_HELP}. With --model NAME (and no SRC) the official weights are downloaded, '
        'verified, converted and cached. With --to pdparams a checkpoint is written back as PaddleDetection '
        'weights.')
    p.add_argument('src', nargs='?', help='weight file or directory')
    p.add_argument('-o', '--out', help='output file (.pth, or .pdparams with --to pdparams); with --model and '
                   'no -o the cached checkpoint path is printed')
    p.add_argument('--arch', choices=list(ARCHS),
                   help='architecture (inferred from the source when possible; refused if it contradicts it)')
    p.add_argument('--model', choices=list_models(), help='zoo model: download + convert its official weights')
    p.add_argument('--to', choices=['pth', 'pdparams'], default='pth', help='output kind (default: pth)')
    p.set_defaults(func=run)
    return p


def run(args):
    from kpt_plugin.cli import CLIError
    from kpt_plugin import zoo
    from .convert import convert, export_pdparams
    if args.src is None and args.model is None:
        raise CLIError('give SRC (a weight file or directory) or --model NAME')
    if args.to == 'pdparams':
        if args.src is None or not args.out:
            raise CLIError('--to pdparams needs SRC and -o OUT.pdparams')
        r = export_pdparams(args.src, args.out, arch=args.arch)
        print(f'{args.src} ({r["source_format"]}, {r["arch"]}) -> {args.out}: {r["tensors"]} PaddleDetection '
              f'tensors in {r["seconds"]:.2f} s')
        return 0
    if args.src is None:  # --model only: the zoo downloads / converts / caches
        info = zoo.get_model_info(args.model)
        if args.arch and args.arch != info.arch:
            raise CLIError(f'--model {args.model} is {info.arch}, not {args.arch}')
        cfg, ckpt = zoo.resolve_checkpoint(args.model)
        if args.out:
            import shutil
            shutil.copyfile(ckpt, args.out)
            ckpt = args.out
        print(f'{args.model}: config {cfg}\ncheckpoint {ckpt}')
        return 0
    if not args.out:
        raise CLIError('-o OUT.pth is required')
    arch = args.arch or (zoo.get_model_info(args.model).arch if args.model else None)
    meta = convert(args.src, args.out, arch=arch, model=args.model)
    print(f'{args.src} ({meta["source_format"]}, {meta["arch"]}) -> {args.out} in {meta["seconds"]:.2f} s',
          file=sys.stdout)
    return 0
