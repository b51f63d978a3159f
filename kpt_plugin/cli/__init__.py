"""The ``kpt-plugin`` sub-commands, one module each (``add_parser(subparsers)`` + ``run(args)``); the launcher that
dispatches to them is the top-level :mod:`kpt_plugin_cli` (``convert`` lives in :mod:`weight_convert.cli`)."""
