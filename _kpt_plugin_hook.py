"""Startup hook of kpt_plugin, run by ``kpt_plugin.pth`` in site-packages at interpreter start.

It only puts a tiny finder on ``sys.meta_path`` (standard library only, no file access). The first time one of
mmengine, mmcv, mmdet, mmpose or mim is imported, the finder loads :mod:`kpt_plugin._compat` (not the ``kpt_plugin``
package, which imports mmpose itself) and lets it install its fixes before that import proceeds, so MMPose's own
entry points work whether or not ``kpt_plugin`` is imported first. ``KPT_PLUGIN_NO_HOOK=1`` turns it off.
"""
import os
import sys

_TRIGGERS = frozenset(('mmengine', 'mmcv', 'mmdet', 'mmpose', 'mim'))  # mim: only the warning filters matter


class _Trigger:
    """Meta-path finder that never finds a module; it fires once on the first OpenMMLab import."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname in _TRIGGERS:
            _fire()
        return None

    @staticmethod
    def invalidate_caches():
        pass


def _load_compat():
    """``kpt_plugin._compat`` as that submodule, without executing ``kpt_plugin/__init__.py``."""
    import importlib.machinery
    import importlib.util
    name = 'kpt_plugin._compat'
    if name in sys.modules:
        return sys.modules[name]
    if 'kpt_plugin' in sys.modules:  # the package is (being) imported: the normal way works
        return importlib.import_module(name)
    pkg = importlib.util.find_spec('kpt_plugin')  # top-level name: finds without importing
    if pkg is None or not pkg.submodule_search_locations:
        return None
    spec = importlib.machinery.PathFinder.find_spec(name, list(pkg.submodule_search_locations))
    if spec is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _fire():
    try:
        sys.meta_path.remove(_Trigger)
    except ValueError:  # already fired (re-entrant import)
        return
    try:
        compat = _load_compat()
        if compat is not None:
            compat.install()
    except Exception as e:  # noqa: BLE001 - a broken kpt_plugin must never break the user's own imports
        import warnings
        warnings.warn(f'kpt_plugin startup hook failed, MMPose runs without its compat fixes: {e!r}',
                      RuntimeWarning, stacklevel=3)


def install():
    """Arm the trigger (idempotent); called from ``kpt_plugin.pth``."""
    if os.environ.get('KPT_PLUGIN_NO_HOOK') or _Trigger in sys.meta_path:
        return
    sys.meta_path.insert(0, _Trigger)
    if any(name in sys.modules for name in _TRIGGERS):  # armed late (site.addsitedir): fire now
        _fire()


install()
