import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

import kpt_plugin  # noqa: F401  (applies the fixes)
from kpt_plugin import _compat as compat
from weight_convert.safe_pickle import UnsafePickleError, safe_loads

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _mmengine_style_checkpoint(path):
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('kpt_plugin_compat_test')
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_info('iter', 7)
    torch.save({'meta': {'epoch': 1, 'seed': np.int64(3), 'arr': np.arange(3.)},
                'message_hub': hub.state_dict(), 'state_dict': {'w': torch.ones(2)}}, path)


def test_plain_torch_load_rejects_mmengine_checkpoints(tmp_path):
    # the upstream breakage this module absorbs (torch >= 2.6 weights_only default)
    path = tmp_path / 'c.pth'
    _mmengine_style_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_mmengine_loads_its_own_checkpoints(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'c.pth'
    _mmengine_style_checkpoint(path)
    ck = _load_checkpoint(str(path), map_location='cpu')
    assert ck['meta']['seed'] == 3 and ck['message_hub']['runtime_info']['iter'] == 7
    assert ck['message_hub']['log_scalars']['train/loss'].current() == 0.25


class _Evil:
    def __reduce__(self):
        return (os.system, ('touch /tmp/kpt_plugin_pwned',))


def test_checkpoint_loader_refuses_code_execution(tmp_path):
    marker = '/tmp/kpt_plugin_pwned'
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='os|posix|system'):
        compat.load_checkpoint(str(path))
    assert not os.path.exists(marker)


def test_restricted_getattr_cannot_escape():
    # getattr is allowed only for public attributes of allow-listed classes
    payload = pickle.dumps(getattr)  # builtins.getattr
    assert safe_loads(payload) is not None
    evil = b'\x80\x04cbuiltins\ngetattr\ncnumpy\nndarray\nX\x0b\x00\x00\x00__getattr__\x86R.'
    with pytest.raises(UnsafePickleError):
        safe_loads(evil)


def test_mmcv_ops_stand_in(mmcv_lite):
    import mmcv.ops
    from mmpose.models.heads.transformer_heads import edpose_head
    if not mmcv_lite:
        assert not hasattr(mmcv.ops.MultiScaleDeformableAttention, '_kpt_plugin_placeholder')
        return
    assert 'mmcv.ops' in compat.applied()
    # pure-Python ops are mmcv's own, the rest raise one clear error when used (not when imported)
    from mmcv.ops import batched_nms, point_sample
    from mmcv.ops.merge_cells import ConcatCell
    assert point_sample.__module__ == 'mmcv.ops.point_sample' and ConcatCell.__module__ == 'mmcv.ops.merge_cells'
    assert point_sample(torch.ones(1, 1, 4, 4), torch.full((1, 2, 2), 0.5)).shape == (1, 1, 2)
    with pytest.raises(compat.OpUnavailableError, match='mmcv.ops.nms.batched_nms .*mmcv-lite'):
        batched_nms(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1), dict(iou_threshold=0.5))
    with pytest.raises(ImportError, match='mmcv-lite'):
        edpose_head.MultiScaleDeformableAttention()
    with pytest.raises(ModuleNotFoundError, match='mmcv.ops.no_such_op'):
        import mmcv.ops.no_such_op  # noqa: F401
    assert not hasattr(mmcv.ops, '__wrapped__')  # inspect/mock probes get a plain AttributeError


def test_full_mmcv_is_left_alone(fresh_python):
    # a working mmcv._ext (faked here) means the real mmcv.ops loads, untouched
    code = '''
import importlib.abc, importlib.machinery, sys
class FakeExt(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == 'mmcv._ext' else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        def attr(name):
            if name.startswith('_'):
                raise AttributeError(name)
            return lambda *args, **kwargs: 'compiled-' + name
        module.__getattr__ = attr
sys.meta_path.insert(1, FakeExt())
import mmcv.ops
from kpt_plugin import _compat
print(mmcv.ops.__file__.endswith('ops/__init__.py'), mmcv.ops.get_compiler_version(), 'mmcv.ops' in _compat.applied())
'''
    out = fresh_python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['True', 'compiled-get_compiler_version', 'False']


def test_mmpose_visualization_imports_without_torchvision():
    from mmpose.visualization import simcc_vis
    img = simcc_vis.ToPILImage()(torch.rand(3, 4, 5))
    assert img.size == (5, 4)
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001
        assert 'torchvision' not in sys.modules, 'the placeholder must not leak'


def test_installed_but_broken_torchvision(fresh_python, tmp_path):
    # a torchvision wheel built for another torch fails at import like this one
    fake = tmp_path / 'tv' / 'torchvision'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    code = '''
import sys, torch
from mmpose.visualization import simcc_vis
print(simcc_vis.ToPILImage()(torch.rand(3, 4, 5)).size, 'torchvision' in sys.modules)
try:
    import torchvision
except RuntimeError as e:
    print('still raises:', e)
from kpt_plugin import _compat
print('torchvision' in _compat.applied())
'''
    out = fresh_python(code, path=(str(tmp_path / 'tv'), REPO))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ['(5, 4) False', 'still raises: operator torchvision::nms does not exist',
                                       'True']


def test_checkpoint_fix_once_logged_whatever_the_import_order(fresh_python):
    # no startup hook: mmengine's checkpoint module is imported before kpt_plugin, then install() runs twice;
    # the user's own https loader (registered before) is theirs to keep
    code = '''
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format='%(name)s|%(message)s')
from mmengine.runner.checkpoint import CheckpointLoader
@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)
def mine(filename, map_location=None):
    return 'mine'
import kpt_plugin
from kpt_plugin import _compat
_compat.install()
print('loaders:', CheckpointLoader._schemes[''].__module__, CheckpointLoader._schemes['https://'] is mine)
'''
    out = fresh_python(code, hook=False)
    assert out.returncode == 0, out.stderr[-3000:]
    fixes = [ln for ln in out.stdout.splitlines() if ln.startswith('kpt_plugin.compat|compat fix mmengine.checkpoint')]
    assert len(fixes) == 1 and 'local checkpoints' in fixes[0] and 'weights_only' in fixes[0], out.stdout
    assert 'loaders: kpt_plugin._compat True' in out.stdout


def test_openvino_backends_leave_a_valid_signal_stack(fresh_python, tmp_path):
    """Fix 5: two OpenVINO backends destroyed in creation order leave the thread on a mapped alternate signal stack,
    and a signal handled afterwards does not kill the process (with a Core each, OpenVINO 2026.4 leaves it on the
    first Core's freed stack: the suite died by SIGSEGV in ``subprocess.communicate``)."""
    code = f'''
import ctypes, faulthandler, gc, os, signal, warnings
warnings.simplefilter('ignore')
import torch
from kpt_plugin.inference.runtime.openvino import OpenVinoBackend
faulthandler.enable()
path = {str(tmp_path / 'tiny.onnx')!r}
torch.onnx.export(torch.nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 8, 8), path, input_names=['image'], dynamo=False)
class Stack(ctypes.Structure):
    _fields_ = [('ss_sp', ctypes.c_void_p), ('ss_flags', ctypes.c_int), ('ss_size', ctypes.c_size_t)]
a = OpenVinoBackend(path)
b = OpenVinoBackend(path)
del a; gc.collect()
del b; gc.collect()
now = Stack()
assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(now)) == 0
sp = now.ss_sp or 0
spans = [[int(x, 16) for x in line.split()[0].split('-')] for line in open('/proc/self/maps')]
print('stack mapped:', now.ss_flags != 0 or any(lo <= sp < hi for lo, hi in spans))
signal.signal(signal.SIGUSR1, lambda *a: print('handled'))
os.kill(os.getpid(), signal.SIGUSR1)
print('survived')
'''
    out = fresh_python(code)
    assert out.returncode == 0, (out.returncode, out.stderr[-3000:])
    assert 'stack mapped: True' in out.stdout and 'handled' in out.stdout and 'survived' in out.stdout, out.stdout
