"""An mmengine Runner round on a tiny COCO-format set: train, validate with CocoMetric, save, resume."""
import os.path as osp

import pytest
import torch

import kpt_plugin  # noqa: F401
from kpt_plugin.zoo import get_config_path as config_path


def _tiny_cfg(shared_dir, work_dir, max_epochs):
    from mmengine.config import Config
    data = osp.join(shared_dir, 'data', 'coco_val2017_mini')
    cfg = Config.fromfile(config_path('PP-TinyPose_128x96'))
    ds = dict(type='CocoDataset', data_root=data, data_mode='topdown', ann_file='test_coco.json',
              data_prefix=dict(img=''))
    cfg.train_dataloader = dict(
        batch_size=6, num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(ds, pipeline=cfg.train_pipeline))
    cfg.val_dataloader = dict(
        batch_size=4, num_workers=0, persistent_workers=False, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
        dataset=dict(ds, test_mode=True, pipeline=cfg.val_pipeline))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = cfg.test_evaluator = dict(type='CocoMetric', ann_file=osp.join(data, 'test_coco.json'))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = str(work_dir)
    return cfg


def test_train_val_save_resume(shared_dir, tmp_path):
    from mmengine.runner import Runner
    cfg = _tiny_cfg(shared_dir, tmp_path, max_epochs=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2  # 12 people with keypoints, batch 6
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()
    metrics = runner.val_loop.run()
    assert 'coco/AP' in metrics and 0 <= metrics['coco/AP'] <= 1

    # mmengine's own checkpoint (message hub, numpy scalars) loads under torch >= 2.6 via kpt_plugin._compat
    cfg2 = _tiny_cfg(shared_dir, tmp_path, max_epochs=2)
    cfg2.resume = True
    cfg2.load_from = str(ckpt)
    runner2 = Runner.from_cfg(cfg2)
    runner2.train()
    assert runner2.iter == 4
    trained = torch.load(str(tmp_path / 'epoch_2.pth'), map_location='cpu', weights_only=False)
    assert trained['meta']['epoch'] == 2 and trained['meta']['iter'] == 4
