"""``python -m kpt_plugin.serving [options]`` = ``kpt-plugin serve [options]``."""
import sys

from kpt_plugin.cli.serve import main

if __name__ == '__main__':
    sys.exit(main())
