"""``kpt-plugin`` console script: one entry point, one sub-command per module.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` which registers an
``argparse`` sub-parser and sets ``func`` (called with the parsed namespace, returns an exit code).
"""
import argparse
import importlib
import sys

# name -> module implementing it (imported lazily so `kpt-plugin --help` stays fast)
SUBCOMMANDS = {
    'convert': 'weight_convert.cli',
    'predict': 'kpt_plugin.tools.predict',
    'export': 'kpt_plugin.tools.export',
    'check-dataset': 'kpt_plugin.tools.check_dataset',
}


class CLIError(Exception):
    """An error meant for the user: printed as one line, exit code 2, no traceback."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog='kpt-plugin', description='PP-TinyPose for MMPose: convert weights, predict, evaluate, train.')
    from . import __version__
    parser.add_argument('--version', action='version', version=f'kpt_plugin {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, modname in SUBCOMMANDS.items():
        importlib.import_module(modname).add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as e:
        print(f'kpt-plugin {args.command}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
