"""The one place where kpt_plugin absorbs known breakages of its upstream stack.

:func:`install` puts one finder on ``sys.meta_path`` that applies each fix when the module it concerns is first
imported, so import order never matters. It runs on ``import kpt_plugin`` and, through the startup hook
``kpt_plugin.pth`` (:mod:`_kpt_plugin_hook`), on the first import of mmengine / mmcv / mmdet / mmpose / mim, so MMPose's
own scripts work without importing ``kpt_plugin`` first. Each fix applies only where the real thing is missing or
broken, once, and logs what it did and why at debug level (``logging.getLogger('kpt_plugin.compat')``).

1. ``mmcv.ops``: mmcv-lite ships the Python files but not the compiled ``mmcv._ext`` they load, and mmpose
   (ED-Pose head) and mmdet import ops at module level. When ``mmcv._ext`` cannot be imported, ``mmcv.ops`` is a
   stand-in package: pure-Python op modules (``point_sample``, ``merge_cells``, ...) are the real ones, every other
   op is a placeholder that raises :class:`OpUnavailableError` when used. A full mmcv is left alone.
2. mmengine 0.10.7 loads checkpoints with a bare ``torch.load``; torch >= 2.6 defaults to ``weights_only=True``,
   which rejects mmengine's own checkpoints (numpy scalars, ``HistoryBuffer``, ``getattr(HistoryBuffer, 'mean')``
   in the message hub). Allow-listing cannot express that getattr safely, so mmengine's local and http loaders
   are replaced by :func:`weight_convert.io.load_checkpoint`, a restricted unpickler (never a plain one).
3. torchvision: there is no CPU wheel for torch 2.13, and a CUDA or mismatched one fails at import (``operator
   torchvision::nms does not exist``). mmpose imports ``torchvision.transforms.ToPILImage`` at module level in
   ``mmpose.visualization.simcc_vis`` only; while that one module executes, a PIL-based ``ToPILImage`` stands in
   for an unusable torchvision (nothing else ever sees the stand-in).
4. Known, harmless upstream warnings are silenced (:func:`_silence_known_warnings`).
5. OpenVINO (2026.4's CPU plugin) gives each thread that compiles a model an alternate signal stack owned by that
   ``Core`` and, when the ``Core`` is destroyed, puts back the stack that was current when it installed its own.
   With two Cores destroyed in creation order, the thread is left on the first Core's freed stack, and the next
   signal it handles (a SIGCHLD once torch's DataLoader has set a handler, SIGINT, ...) kills the process with
   SIGSEGV and no traceback (the test suite died so, in ``subprocess.communicate``). :func:`openvino_core` is the
   process's one ``Core``, never destroyed before exit; every OpenVINO user in kpt_plugin (and its tests, tools and
   benchmarks) compiles through it. Code that makes its own Cores in the same process meets OpenVINO's bug as is.

Importing this module is cheap (standard library only): the startup hook loads it inside the first mmengine import.
"""
import ast
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import logging
import os.path as osp
import sys
import threading
import types
import warnings

logger = logging.getLogger('kpt_plugin.compat')

__all__ = ['OpUnavailableError', 'install', 'apply_all', 'applied', 'after_import', 'load_checkpoint', 'openvino_core']

_applied = {}  # fix name -> reason, in the order applied (see :func:`applied`)


def _log_fix(name, reason):
    _applied[name] = reason
    logger.debug('compat fix %s: %s', name, reason)


def applied():
    """Fixes applied so far in this interpreter.

    Returns:
        dict[str, str]: fix name -> why it was needed.
    """
    return dict(_applied)


def load_checkpoint(filename, map_location=None):
    """:func:`weight_convert.io.load_checkpoint`: a checkpoint loader that never executes pickled code."""
    from weight_convert.io import load_checkpoint as _load
    return _load(filename, map_location)


# ---------------------------------------------------------------- 5. one OpenVINO Core per process
_ov_core = []
_ov_lock = threading.Lock()


def openvino_core():
    """The process-wide ``openvino.Core`` (see fix 5 in the module docstring); created on first use.

    Raises:
        ImportError: openvino is not installed.
    """
    if not _ov_core:
        import openvino
        with _ov_lock:
            if not _ov_core:
                _ov_core.append(openvino.Core())
                _log_fix('openvino_core', 'one Core per process: OpenVINO restores stale alternate signal stacks '
                         'when Cores are destroyed out of order')
    return _ov_core[0]


# ---------------------------------------------------------------- 4. warnings
def _silence_known_warnings():
    """Filters for upstream warnings that are expected in this stack and say nothing actionable."""
    # mmengine / mim / pkg_resources users: setuptools<82 is pinned on purpose (mim and mmengine's `pkg::`
    # config lookup need pkg_resources), so the deprecation notice only repeats on every command.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    # mmcv.cnn's BC import of MultiScaleDeformableAttention: with mmcv-lite it fails (fix 1 makes it a
    # placeholder), with the stand-in it reports that the class moved; neither concerns users of mmcv.cnn.
    for message, category in (('Fail to import ``MultiScaleDeformableAttention``', UserWarning),
                              ('``MultiScaleDeformableAttention`` has been moved', ImportWarning)):
        warnings.filterwarnings('ignore', message=message, category=category)
    # MMPose's configs name dataset info as `configs/_base_/datasets/X.py`, relative to an MMPose checkout; outside
    # one, mmpose uses the identical copy it ships and says so on every model load.
    warnings.filterwarnings('ignore', message='The metainfo config file "configs/_base_/datasets/',
                            category=UserWarning)


# ---------------------------------------------------------------- 1. mmcv.ops stand-in
class OpUnavailableError(ModuleNotFoundError):
    """An mmcv op was used but mmcv's compiled extension ``mmcv._ext`` is missing or broken.

    A ``ModuleNotFoundError`` (hence an ``ImportError``) so upstream code that probes for ops keeps working.
    """


_EXT_UNSET = object()
_ext_error = _EXT_UNSET  # None: mmcv._ext works; else the exception that importing it raised


def _mmcv_ext_error():
    """Why ``mmcv._ext`` cannot be imported, or None when it can (checked once, on the first mmcv.ops import)."""
    global _ext_error
    if _ext_error is _EXT_UNSET:
        try:
            importlib.import_module('mmcv._ext')
            _ext_error = None
        except Exception as e:  # noqa: BLE001 - missing (mmcv-lite) or unloadable (ABI mismatch): not usable
            _ext_error = e
    return _ext_error


def _unavailable_message(qualname, cause):
    return (f'{qualname} is not available: mmcv.ops needs mmcv\'s compiled extension mmcv._ext, which failed to '
            f'import ({type(cause).__name__}: {cause}). mmcv-lite is built without it. Install the full mmcv '
            '(`mim install "mmcv>=2.0.0rc4,<2.2.0"`, or build it with MMCV_WITH_OPS=1) to use this model.')


def _placeholder(module_name, name, cause):
    """A class that stands in for op ``name``: it can be imported, subclassed and registered, not used."""
    import torch  # mmcv.ops is only imported by code that imported torch already

    message = _unavailable_message(f'{module_name}.{name}', cause)

    def _raise(*args, **kwargs):
        raise OpUnavailableError(message, name='mmcv._ext')

    return type(name, (torch.nn.Module,), {
        '__new__': _raise, 'apply': staticmethod(_raise), '__doc__': f'Placeholder: {message}',
        '__module__': module_name, '__qualname__': name, '_kpt_plugin_placeholder': True})


def _placeholder_getattr(module, cause=None):
    def __getattr__(name):
        if name.startswith('_'):  # dunders and private names are probed by inspect, pickle, mock, ...
            raise AttributeError(f'module {module.__name__!r} has no attribute {name!r}')
        value = _placeholder(module.__name__, name, cause or _mmcv_ext_error())
        setattr(module, name, value)
        return value
    return __getattr__


def _ops_index(ops_dirs):
    """Public names of the real ``mmcv/ops/__init__.py`` -> (submodule, name there), read with ``ast``."""
    for folder in ops_dirs:
        path = osp.join(folder, '__init__.py')
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                tree = ast.parse(f.read(), path)
            index = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                    for alias in node.names:
                        index.setdefault(alias.asname or alias.name, (node.module, alias.name))
            return index
    return {}


class _OpsPackageLoader(importlib.abc.Loader):
    """Creates the stand-in ``mmcv.ops``: names resolve lazily through the real submodules (or placeholders)."""

    def __init__(self, ops_dirs):
        self.ops_dirs = ops_dirs

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        index = _ops_index(self.ops_dirs)
        module.__doc__ = 'kpt_plugin stand-in for mmcv.ops: mmcv._ext is missing, ops raise OpUnavailableError.'
        module.__all__ = sorted(index)
        placeholder_getattr = _placeholder_getattr(module)

        def __getattr__(name):
            if name in index:
                sub, real_name = index[name]
                value = getattr(importlib.import_module(f'{module.__name__}.{sub}'), real_name)
                setattr(module, name, value)
                return value
            return placeholder_getattr(name)

        module.__getattr__ = __getattr__


class _OpsSubmoduleLoader(importlib.abc.Loader):
    """Runs a real ``mmcv.ops.<name>`` file; when it cannot load without ``mmcv._ext``, makes it a placeholder."""

    def __init__(self, real_loader):
        self.real_loader = real_loader

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        cause = None
        if self.real_loader is not None:
            module.__loader__ = module.__spec__.loader = self.real_loader  # tracebacks/inspect read the source
            try:
                self.real_loader.exec_module(module)
                return
            except Exception as e:  # noqa: BLE001 - the op module needs mmcv._ext (load_ext) or a sibling that does
                cause = e
                keep = ('__name__', '__loader__', '__package__', '__spec__', '__path__', '__file__', '__cached__')
                for key in [k for k in module.__dict__ if k not in keep]:
                    del module.__dict__[key]
        module.__getattr__ = _placeholder_getattr(module, cause)


def _ops_spec(fullname, path):
    """Spec for the stand-in ``mmcv.ops`` or one of its submodules, or None to import the real one."""
    cause = _mmcv_ext_error()
    if cause is None:
        return None
    real = importlib.machinery.PathFinder.find_spec(fullname, path)
    if fullname == 'mmcv.ops':
        dirs = list(real.submodule_search_locations or []) if real is not None else []
        spec = importlib.machinery.ModuleSpec(fullname, _OpsPackageLoader(dirs), is_package=True)
        spec.submodule_search_locations = dirs  # the real folder, so submodules keep their real files
        _log_fix('mmcv.ops', f'stand-in package, {type(cause).__name__}: {cause} (mmcv-lite has no compiled ops)')
        return spec
    if real is None:
        if path:  # the real folder exists and has no such file: a genuine ModuleNotFoundError
            return None
        return importlib.machinery.ModuleSpec(fullname, _OpsSubmoduleLoader(None))
    real.loader = _OpsSubmoduleLoader(real.loader)
    return real


# ---------------------------------------------------------------- 2. mmengine checkpoints under torch >= 2.6
def _torch_version():
    import torch
    return tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2])


def _fix_checkpoint_loader(module):
    """After ``mmengine.runner.checkpoint`` ran: route mmengine's own local/http loaders through ours."""
    if _torch_version() < (2, 6):
        return
    loader = module.CheckpointLoader
    schemes = getattr(loader, '_schemes', {})

    def load_from_local(filename, map_location):
        return load_checkpoint(filename, map_location)

    def load_from_http(filename, map_location=None, model_dir=None, progress=True):
        import os
        from torch.hub import download_url_to_file, get_dir
        model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
        os.makedirs(model_dir, exist_ok=True)
        dst = osp.join(model_dir, osp.basename(filename.split('?')[0]))
        if not osp.isfile(dst):
            download_url_to_file(filename, dst, progress=progress)
        return load_checkpoint(dst, map_location)

    replaced = []
    # only mmengine's own loaders: a scheme the user registered is theirs to keep
    if schemes.get('') is getattr(module, 'load_from_local', None):
        loader.register_scheme(prefixes='', force=True)(load_from_local)
        replaced.append('local')
    if schemes.get('https://') is getattr(module, 'load_from_http', None):
        loader.register_scheme(prefixes=('http://', 'https://'), force=True)(load_from_http)
        replaced.append('http(s)')
    if replaced:
        _log_fix('mmengine.checkpoint', f'{"/".join(replaced)} checkpoints load with weight_convert.io.'
                 'load_checkpoint: torch >= 2.6 makes torch.load weights_only, which rejects mmengine checkpoints')


# ---------------------------------------------------------------- 3. torchvision for mmpose.visualization
class _ToPILImage:
    """``torchvision.transforms.ToPILImage`` for the CHW float / HWC uint8 inputs mmpose passes."""

    def __call__(self, pic):
        import numpy as np
        import torch
        from PIL import Image
        if isinstance(pic, torch.Tensor):
            arr = pic.detach().cpu()
            if arr.ndim == 3:
                arr = arr.permute(1, 2, 0)
            arr = arr.numpy()
            if arr.dtype.kind == 'f':
                arr = (arr * 255).clip(0, 255).astype(np.uint8)
        else:
            arr = np.asarray(pic)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        return Image.fromarray(arr)


def _torchvision_error():
    """Why ``torchvision`` cannot be imported (missing, or broken for this torch), or None."""
    try:
        importlib.import_module('torchvision')
        return None
    except Exception as e:  # noqa: BLE001 - e.g. RuntimeError: operator torchvision::nms does not exist
        return e


@contextlib.contextmanager
def _torchvision_for_simcc_vis(module):
    """While ``mmpose.visualization.simcc_vis`` executes, let an unusable torchvision be a PIL stand-in."""
    cause = _torchvision_error()
    if cause is None:
        yield
        return
    tv = types.ModuleType('torchvision')
    tv.__path__ = []
    tv.transforms = types.ModuleType('torchvision.transforms')
    tv.transforms.ToPILImage = _ToPILImage
    names = ('torchvision', 'torchvision.transforms')
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    sys.modules.update({'torchvision': tv, 'torchvision.transforms': tv.transforms})
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    _log_fix('torchvision', f'{module.__name__} got a PIL-based ToPILImage: torchvision is unusable '
             f'({type(cause).__name__}: {cause})')


# ---------------------------------------------------------------- the import hook
def _bind_to_package(module):
    # _kpt_plugin_hook loads this module before the kpt_plugin package exists; attach it once that has run.
    setattr(module, '_compat', sys.modules[__name__])


_AFTER_IMPORT = {  # module -> fix run right after the module's code, or at install() if it is imported already
    'mmengine.runner.checkpoint': _fix_checkpoint_loader,
    'kpt_plugin': _bind_to_package,
}
_AROUND_IMPORT = {  # module -> context manager wrapped around the module's code
    'mmpose.visualization.simcc_vis': _torchvision_for_simcc_vis,
}


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader and applies the fixes registered for that module."""

    def __init__(self, real_loader):
        self.real_loader = real_loader

    def create_module(self, spec):
        return self.real_loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.real_loader  # as if we had never been there
        name = module.__name__
        around = _AROUND_IMPORT.get(name)
        with around(module) if around is not None else contextlib.nullcontext():
            self.real_loader.exec_module(module)
        after = _AFTER_IMPORT.get(name)
        if after is not None:
            _run_fix(after, module)


def after_import(name, fix):
    """Run ``fix(module)`` right after module ``name`` is first imported (now, if it is imported already)."""
    _AFTER_IMPORT[name] = fix
    _fix_if_loaded(name, fix)


def _fix_if_loaded(name, fix):
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, '__spec__', None), '_initializing', False):
        _run_fix(fix, module)


def _run_fix(fix, module):
    try:
        fix(module)
    except Exception as e:  # noqa: BLE001 - a fix that breaks must not break the upstream import it follows
        warnings.warn(f'kpt_plugin compat fix for {module.__name__} failed: {e!r}', RuntimeWarning, stacklevel=2)


class _CompatFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: stands in for a broken ``mmcv.ops`` and hooks the modules that need a fix."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'mmcv.ops' or fullname.startswith('mmcv.ops.'):
            return _ops_spec(fullname, path)
        if fullname not in _AFTER_IMPORT and fullname not in _AROUND_IMPORT:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, 'exec_module'):
                    spec.loader = _HookedLoader(spec.loader)
                return spec
        return None


_finder = _CompatFinder()


def install():
    """Install the compat layer (idempotent): warning filters, the import hook, fixes for loaded modules."""
    _silence_known_warnings()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    for name, fix in list(_AFTER_IMPORT.items()):
        _fix_if_loaded(name, fix)


apply_all = install  # the name kpt_plugin/__init__.py calls
