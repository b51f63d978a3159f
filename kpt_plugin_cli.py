"""The ``kpt-plugin`` console script: one entry point, one sub-command per module of :mod:`kpt_plugin.cli`.

It lives outside the ``kpt_plugin`` package on purpose: importing ``kpt_plugin`` registers its modules into
MMPose (which imports torch and MMPose, seconds), so ``--help``, ``--version`` and ``convert`` would pay that.

Each sub-command module exposes ``add_parser(subparsers)`` (registers an ``argparse`` sub-parser and sets ``func``,
called with the parsed namespace, returning an exit code). Modules are imported only for the sub-command that runs,
so ``kpt-plugin --help`` imports neither torch nor MMPose. User errors (:class:`~kpt_plugin.errors.KptError`) print
one line and exit 2; anything else is a bug and keeps its traceback. ``--debug`` re-raises user errors too.
"""
import argparse
import importlib
import sys

#: name -> (module implementing it, one-line help); the help is here so `--help` needs no import
SUBCOMMANDS = {
    'convert': ('weight_convert.cli', 'convert Paddle / OpenVINO / ncnn weights into an MMPose checkpoint'),
    'predict': ('kpt_plugin.cli.predict', 'predict keypoints (json + drawn image per input)'),
    'pipeline': ('kpt_plugin.cli.pipeline', 'detect persons and their keypoints in images, videos, cameras'),
    'export': ('kpt_plugin.cli.export', 'export the model to ONNX'),
    'check-dataset': ('kpt_plugin.cli.check_dataset', 'check (and optionally split) a COCO keypoint dataset'),
    'serve': ('kpt_plugin.cli.serve', "serve PaddleX's human_keypoint_detection HTTP API (FastAPI + uvicorn)"),
    'tune': ('kpt_plugin.cli.tune', "measure and cache backend='auto' / use_hpip's choice for this machine"),
    'quantize': ('kpt_plugin.cli.quantize', 'int8 ONNX model calibrated on your images'),
}


def _version():
    # read, not imported: importing kpt_plugin.version would run kpt_plugin/__init__ (registration)
    import os.path as osp
    ns = {}
    with open(osp.join(osp.dirname(osp.abspath(__file__)), 'kpt_plugin', 'version.py')) as f:
        exec(f.read(), ns)  # noqa: S102 - our own one-line file
    return ns['__version__']


def build_parser(command=None):
    """The parser; sub-command modules are imported for ``command`` only (all of them when None)."""
    parser = argparse.ArgumentParser(
        prog='kpt-plugin', description='PP-TinyPose for MMPose: convert weights, predict, export, check datasets. '
        'Training and evaluation: tools/train.py and tools/test.py (or mim train / mim test kpt_plugin).')
    parser.add_argument('--version', action='version', version=f'kpt_plugin {_version()}')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of user errors too')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (modname, help_) in SUBCOMMANDS.items():
        if command in (None, name):
            mod = importlib.import_module(modname)
            mod.add_parser(sub, resolver=_zoo_resolver) if name == 'convert' else mod.add_parser(sub)
        else:
            sub.add_parser(name, help=help_, add_help=False)
    return parser


def _zoo_resolver():
    # `convert --model NAME` resolves zoo names; weight_convert itself may not import kpt_plugin
    import types
    from kpt_plugin import zoo
    return types.SimpleNamespace(arch=lambda name: zoo.get_model_info(name).arch, fetch=zoo.resolve_checkpoint)


def _command(argv):
    """The sub-command named in ``argv`` (first non-option word), if any."""
    return next((a for a in argv if a in SUBCOMMANDS), None)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv) or '')
    args = parser.parse_args(argv)
    from weight_convert.errors import KptError  # = kpt_plugin.errors.KptError, without kpt_plugin's import
    try:
        return int(args.func(args) or 0)
    except KptError as e:
        if args.debug:
            raise
        print(f'kpt-plugin {args.command}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
