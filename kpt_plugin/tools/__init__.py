"""Command-line tools behind the ``kpt-plugin`` sub-commands."""
