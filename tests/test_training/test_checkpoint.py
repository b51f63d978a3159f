"""kpt_plugin.training.checkpoint: a kill -9 during a save leaves the previous files whole, rotation deletes only
after the new file is complete, and resume picks the newest checkpoint that loads."""
import os
import os.path as osp
import signal
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger

from kpt_plugin.errors import WeightsError
from kpt_plugin.training import AtomicCheckpointHook, atomic_save, latest_usable_checkpoint, read_checkpoint


def _train_ckpt(path, epoch):
    torch.save({'meta': {'epoch': epoch, 'iter': 3 * epoch}, 'state_dict': {'w': torch.full((4,), float(epoch))}},
               path)
    return path


def _truncate(path, src):
    with open(src, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    return path


def test_kill9_during_an_atomic_save_leaves_the_old_file(tmp_path):
    target = _train_ckpt(str(tmp_path / 'epoch_1.pth'), 1)

    def slow_save(out_dir, filename, *args, **kwargs):
        with open(osp.join(out_dir, filename), 'wb') as f:
            f.write(b'PK\x03\x04 half a checkpoint')
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # dies mid-write, as under kill -9

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            atomic_save(slow_save)(str(tmp_path), 'epoch_1.pth')
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert read_checkpoint(target, training=True)['meta']['epoch'] == 1  # untouched
    parts = [p for p in os.listdir(tmp_path) if p.endswith('.part')]
    assert len(parts) == 1 and parts[0].startswith('.epoch_1.pth.')

    # the next run's checkpoint hook removes what the killed save left behind
    hub = MessageHub.get_instance('test_atomic_checkpoint')
    runner = SimpleNamespace(work_dir=str(tmp_path), logger=MMLogger.get_current_instance(), message_hub=hub,
                             save_checkpoint=lambda *a, **k: None)
    AtomicCheckpointHook(interval=1).before_train(runner)
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.part')]
    assert getattr(runner.save_checkpoint, '_kpt_atomic', False)


def test_rotation_deletes_the_old_checkpoint_only_after_the_new_one_is_written(tmp_path):
    hub = MessageHub.get_instance('test_rotation')
    seen = []

    def save_checkpoint(out_dir, filename, *args, **kwargs):
        seen.append(sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')))
        _train_ckpt(osp.join(out_dir, filename), runner.epoch + 1)

    runner = SimpleNamespace(work_dir=str(tmp_path), logger=MMLogger.get_current_instance(), message_hub=hub,
                             save_checkpoint=save_checkpoint, epoch=0, iter=3)
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.before_train(runner)
    for epoch in range(3):
        runner.epoch, runner.iter = epoch, 3 * (epoch + 1)
        hook._save_checkpoint(runner)
    # mmengine would have deleted epoch_N before writing epoch_N+1: a kill in between left no checkpoint
    assert seen == [[], ['epoch_1.pth'], ['epoch_2.pth']]
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == ['epoch_3.pth']
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read() == osp.join(str(tmp_path), 'epoch_3.pth')


def test_latest_usable_checkpoint_skips_a_truncated_latest(tmp_path):
    wd = str(tmp_path)
    assert latest_usable_checkpoint(wd) == (None, [])  # nothing to resume: mmengine starts from scratch
    good = _train_ckpt(osp.join(wd, 'epoch_1.pth'), 1)
    bad = _truncate(osp.join(wd, 'epoch_2.pth'), good)
    with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
        f.write(bad)
    path, skipped = latest_usable_checkpoint(wd)
    assert path == good
    assert [p for p, _ in skipped] == [bad] and 'truncated or corrupt' in skipped[0][1]
    with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
        f.write('')  # a last_checkpoint emptied by a kill during its write
    assert latest_usable_checkpoint(wd)[0] == good
    _truncate(good, bad)
    with pytest.raises(WeightsError, match='no usable checkpoint in .*epoch_2.pth, epoch_1.pth'):
        latest_usable_checkpoint(wd)


class _Evil:
    def __reduce__(self):
        return os.system, ('echo pwned',)


def test_read_checkpoint_errors_are_one_line_and_name_the_file(tmp_path):
    good = _train_ckpt(str(tmp_path / 'epoch_1.pth'), 1)
    bad = _truncate(str(tmp_path / 'epoch_2.pth'), good)
    with pytest.raises(WeightsError) as e:
        read_checkpoint(bad, '--resume', training=True)
    msg = str(e.value)
    assert bad in msg and 'truncated or corrupt' in msg and '--resume without a path' in msg and '\n' not in msg
    weights = str(tmp_path / 'converted.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)}}, weights)
    with pytest.raises(WeightsError, match='not a training checkpoint.*--load-from'):
        read_checkpoint(weights, '--resume', training=True)
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _Evil()}, evil)
    with pytest.raises(WeightsError, match="load_from: .*refused to unpickle global posix.'system'"):
        read_checkpoint(evil)
