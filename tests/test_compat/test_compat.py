import os
import pickle
import sys

import numpy as np
import pytest
import torch

import kpt_plugin  # noqa: F401  (applies the fixes)
from kpt_plugin import _compat as compat
from weight_convert.safe_pickle import UnsafePickleError, safe_loads


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


def test_mmpose_models_import_without_mmcv_ops():
    import mmpose.models  # noqa: F401  (edpose_head imports mmcv.ops at module level)
    from mmpose.models.heads.transformer_heads import edpose_head
    try:
        import mmcv.ops  # noqa: F401
        has_ops = True
    except Exception:  # noqa: BLE001
        has_ops = False
    if not has_ops:
        assert 'mmcv.ops' not in sys.modules, 'the placeholder must not leak'
        with pytest.raises(ImportError, match='mmcv-lite'):
            edpose_head.MultiScaleDeformableAttention()


def test_mmpose_visualization_imports_without_torchvision():
    from mmpose.visualization import simcc_vis
    img = simcc_vis.ToPILImage()(torch.rand(3, 4, 5))
    assert img.size == (5, 4)
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001
        assert 'torchvision' not in sys.modules, 'the placeholder must not leak'
