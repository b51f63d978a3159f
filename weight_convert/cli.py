"""``kpt-plugin convert``: weights of any supported format -> our checkpoint (MMPose PP-TinyPose, mmdet PicoDet
pedestrian), or back to ``.pdparams``.

The host CLI registers the sub-command with :func:`add_parser` and calls ``args.func(args)`` (= :func:`run`), which
raises :class:`~weight_convert.errors.KptError` for every user error. Model names belong to the host (the
kpt_plugin zoo), which weight_convert never imports: the host may pass ``resolver``, a zero-argument callable
called only when ``--model`` is given (so ``convert --help`` and plain conversions import nothing of the host),
returning an object with

* ``arch(name)`` -> the architecture of a model (any spelling :func:`weight_convert.archs.get_arch` accepts),
  raising a ``KptError`` that lists the names for an unknown one;
* ``fetch(name)`` -> ``(config path, checkpoint path)``: download, verify, convert and cache its weights.

Without a resolver ``--model NAME`` is only recorded in the checkpoint meta (``meta['model']``, with SRC).
"""
import argparse
import os
import os.path as osp
import shutil

from .archs import arch_names, get_arch
from .errors import KptError, WeightsError

__all__ = ['add_parser', 'run']

FORMATS_HELP = ('.pth, .pdparams, Paddle inference dir/model (model.json or model.pdmodel + model.pdiparams), '
                'PaddleX model dir (inference.json + inference.pdiparams), OpenVINO IR (dir or model.xml + '
                'model.bin), ncnn (.param + .bin)')


def _arch_arg(text):
    try:
        return get_arch(text).name
    except WeightsError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(subparsers, resolver=None):
    """Register ``convert`` on an ``argparse`` sub-parsers object; ``resolver``: a factory, see the module doc."""
    p = subparsers.add_parser(
        'convert', help='convert PP-TinyPose / PicoDet weights into a checkpoint (or back to .pdparams)',
        description='Convert PP-TinyPose (or its PicoDet pedestrian detector) weights into an mmengine checkpoint '
        'that our MMPose (mmdet) configs load; the family and input size are read from the source. '
        f'SRC may be: {FORMATS_HELP}. With --model NAME (and no SRC) the official weights are downloaded, '
        'verified, converted and cached. With --to pdparams a checkpoint is written back as PaddleDetection '
        'weights.')
    p.add_argument('src', nargs='?', help='weight file or directory')
    p.add_argument('-o', '--out', help='output file (.pth, or .pdparams with --to pdparams); with --model and '
                   'no -o the cached checkpoint path is printed')
    p.add_argument('--arch', type=_arch_arg, metavar='{' + ','.join(arch_names()) + '}',
                   help='architecture (inferred from the source when possible; refused if it contradicts it; '
                   f'also accepted: {", ".join(arch_names(aliases=True)[len(arch_names()):])})')
    p.add_argument('--model', metavar='NAME',
                   help='zoo model (PP-TinyPose_128x96, ...): alone, download + convert its official weights; with '
                   'SRC, the model the weights are (selects the arch, recorded in the checkpoint)')
    p.add_argument('--to', choices=['pth', 'pdparams'], default='pth', help='output kind (default: pth)')
    p.set_defaults(func=run, model_resolver=resolver)
    return p


def _fetch_model(args, resolver):
    if resolver is None:
        raise KptError(f'--model {args.model} without SRC downloads the official weights, which needs the model '
                       'zoo: run `kpt-plugin convert --model NAME`, or give SRC')
    _model_arch(args, resolver)
    cfg, ckpt = resolver.fetch(args.model)
    if args.out:
        from .io import atomic_output
        with atomic_output(args.out) as tmp:
            shutil.copyfile(ckpt, tmp)
        ckpt = osp.abspath(args.out)
    print(f'{args.model}: config {cfg}\ncheckpoint {ckpt}')
    return 0


def _model_arch(args, resolver):
    """The arch of ``--model`` (None without a resolver); refused when ``--arch`` contradicts it."""
    if resolver is None:
        return None
    model_arch = get_arch(resolver.arch(args.model)).name
    if args.arch and args.arch != model_arch:
        raise KptError(f'--model {args.model} is {model_arch}, not {args.arch}')
    return model_arch


def _run(args):
    from .convert import convert, export_pdparams
    factory = getattr(args, 'model_resolver', None)
    resolver = factory() if factory is not None and args.model else None
    if args.src is None and args.model is None:
        raise KptError('give SRC (a weight file or directory) or --model NAME')
    if args.out:
        # before reading (or downloading) anything: a bad output place fails in a second
        from .io import check_writable_dir
        check_writable_dir(osp.dirname(osp.abspath(args.out)), f'-o {args.out}: the folder')
    if args.to == 'pdparams':
        if args.src is None or not args.out:
            raise KptError('--to pdparams needs SRC and -o OUT.pdparams')
        r = export_pdparams(args.src, args.out, arch=args.arch)
        print(f'{args.src} ({r["source_format"]}, {r["arch"]}) -> {args.out}: {r["tensors"]} PaddleDetection '
              f'tensors in {r["seconds"]:.2f} s')
        return 0
    if args.src is None:
        return _fetch_model(args, resolver)
    if not args.out:
        raise KptError('-o OUT.pth is required')
    model_arch = _model_arch(args, resolver) if args.model else None
    arch = args.arch or model_arch
    meta = convert(args.src, args.out, arch=arch, model=args.model)
    print(f'{args.src} ({meta["source_format"]}, {meta["arch"]}) -> {args.out} in {meta["seconds"]:.2f} s')
    return 0


def _os_error(e, args):
    """One line for an ``OSError``: writing the output (full disk, read-only folder) or reading SRC."""
    where = osp.abspath(os.fsdecode(e.filename)) if isinstance(e.filename, (str, bytes, os.PathLike)) else None
    out = osp.abspath(args.out) if args.out else None
    reason = e.strerror or str(e)
    if out and (where is None or where == out or osp.basename(where).startswith(f'.{osp.basename(out)}.')):
        # no file name (torch.save into an open file) happens only while writing
        return KptError(f'-o {args.out}: cannot write the output ({reason}); nothing was written - free disk space '
                        'or choose a writable folder')
    return KptError(f'{e.filename or args.src}: cannot read ({reason}); check the path and its permissions')


def run(args):
    """Run the parsed ``convert`` command; returns the exit code, raises :class:`KptError` for user errors."""
    try:
        return _run(args)
    except KptError:
        raise
    except OSError as e:  # unreadable source, unwritable output: the user's to fix, not a bug
        raise _os_error(e, args) from None
