"""Lazy re-exports (PEP 562): a package names what it offers; the submodule defining a name loads on first use.

The predict path imports a few numpy-only modules of packages whose other modules register into MMPose; with lazy
package ``__init__``s that path imports no MMPose (each MMPose import is ~3 s of a fresh process).
"""
import importlib
import sys

__all__ = ['lazy_exports']


def lazy_exports(package, names):
    """``(__getattr__, __dir__)`` for the package ``package`` exporting ``names`` (name -> relative submodule)."""

    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f'module {package!r} has no attribute {name!r}')

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
