"""``kpt-plugin convert``: weights of any supported format -> MMPose checkpoint."""
import sys


def add_parser(subparsers):
    p = subparsers.add_parser('convert', help='convert PP-TinyPose weights into an MMPose checkpoint',
                              description='Convert PP-TinyPose weights (.pdparams, ...) into an mmengine '
                              'checkpoint that our MMPose configs load.')
    p.add_argument('src', help='weight file or directory')
    p.add_argument('-o', '--out', required=True, help='output checkpoint (.pth)')
    p.add_argument('--arch', choices=['PP-TinyPose_128x96', 'PP-TinyPose_256x192'],
                   help='architecture (inferred from the source when possible)')
    p.set_defaults(func=run)
    return p


def run(args):
    from .convert import convert
    meta = convert(args.src, args.out, arch=args.arch)
    print(f'{args.src} ({meta["source_format"]}, {meta["arch"]}) -> {args.out} in {meta["seconds"]:.2f} s',
          file=sys.stdout)
    return 0
