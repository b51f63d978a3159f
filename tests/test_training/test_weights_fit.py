"""kpt_plugin.training.weights_fit and add_training_hooks."""
import os.path as osp
from types import SimpleNamespace

import pytest
from torch import nn

from kpt_plugin.errors import WeightsError
from kpt_plugin.training import CheckLoadedWeightsHook, add_training_hooks, state_dict_fit

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(REPO, 'configs', 'pp_tinypose', 'td-hm_pp-tinypose_1xb16-50e_custom-128x96.py')


def _net(out=17):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                         nn.Conv2d(8, out, 1))


def _runner(model, load_from='w.pth', resume=False):
    return SimpleNamespace(model=model, cfg=dict(load_from=load_from, resume=resume))


def test_a_new_head_loads_another_model_is_refused():
    model = _net(14)
    hook = CheckLoadedWeightsHook()
    # a 17-keypoint checkpoint for a 14-keypoint model: only the head's 2 tensors differ
    state = {f'module.{k}': v for k, v in _net(17).state_dict().items()}
    hook.after_load_checkpoint(_runner(model), {'state_dict': state})
    fit = state_dict_fit(model.state_dict(), _net(17).state_dict())
    assert (fit['loaded'], fit['mismatched'], fit['missing']) == (fit['total'] - 2, 2, 0)

    other = nn.ModuleDict(dict(fc=nn.Linear(4, 4), out=nn.Linear(4, 2))).state_dict()
    with pytest.raises(WeightsError) as e:
        hook.after_load_checkpoint(_runner(model, 'other_model.pth'), {'state_dict': other})
    msg = str(e.value)
    total = len(model.state_dict())
    assert msg.startswith('load_from other_model.pth: only 0 of the model') and f'{total} tensors' in msg
    assert f'{total} not in the file' in msg and '4 of its 4 tensors unused' in msg and '\n' not in msg
    with pytest.raises(WeightsError, match='^--resume x.pth: only 0'):
        hook.after_load_checkpoint(_runner(model, 'x.pth', resume=True), other)  # a bare state dict too


def test_add_training_hooks_is_idempotent_and_the_config_builds_them():
    from mmengine.registry import init_default_scope
    from mmpose.registry import HOOKS
    from kpt_plugin.cli.cfg_utils import load_config
    cfg = add_training_hooks(add_training_hooks(load_config(CFG)))
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 2  # the config's arguments are kept
    types = [h['type'] for h in cfg.custom_hooks]
    assert types == ['SyncBuffersHook', 'RandomStateHook', 'CheckLoadedWeightsHook']
    assert cfg.custom_imports.imports == ['kpt_plugin', 'kpt_plugin.training']
    init_default_scope('mmpose')
    for hook in [cfg.default_hooks.checkpoint, *cfg.custom_hooks]:
        HOOKS.build(dict(hook))
