"""kpt_plugin.training.randomness: the random state survives a checkpoint round trip, validation leaves it alone,
and dataloader workers draw per epoch, not per process lifetime."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from kpt_plugin.training import EpochSeededWorkers, RandomStateHook, get_rng_state, set_rng_state
from weight_convert.io import load_checkpoint


def _draws():
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # numpy caches the second gaussian: part of the state
    torch.manual_seed(3)
    path = str(tmp_path / 'rng.pth')
    torch.save({'rng_state': get_rng_state()}, path)
    expected = _draws()
    _draws()
    # plain values and tensors only: loads with weights_only=True (and so with the restricted loader)
    set_rng_state(torch.load(path, weights_only=True)['rng_state'])
    assert _draws() == expected
    set_rng_state(load_checkpoint(path)['rng_state'])
    assert _draws() == expected


def test_validation_does_not_shift_the_training_stream():
    hook = RandomStateHook()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = get_rng_state()
    expected = _draws()
    set_rng_state(state)
    hook.before_val(None)
    _draws()  # e.g. the val dataloader drawing its workers' base seed
    hook.after_val(None)
    assert _draws() == expected


class _Noise(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return torch.tensor([np.random.rand(), random.random(), torch.rand(()).item()])


def _epochs(workers, epochs, persistent):
    loader = DataLoader(_Noise(), batch_size=2, num_workers=2, persistent_workers=persistent,
                        worker_init_fn=workers)
    out = []
    for epoch in epochs:
        workers.epoch.value = epoch  # what RandomStateHook.before_train_epoch does
        out.append(torch.cat(list(loader)))
    return out


@pytest.mark.parametrize('persistent', [True, False])
def test_workers_reseed_per_epoch_so_new_workers_match_old_ones(persistent):
    run = _epochs(EpochSeededWorkers(seed=5, rank=0), [0, 1, 2], persistent)
    resumed = _epochs(EpochSeededWorkers(seed=5, rank=0, epoch=2), [2], persistent)
    assert torch.equal(run[2], resumed[0])  # fresh workers at epoch 2 = workers that lived through 0 and 1
    assert not torch.equal(run[0], run[1])  # and epochs draw differently (mmengine's default repeats them)
    other_rank = _epochs(EpochSeededWorkers(seed=5, rank=1, epoch=2), [2], persistent)
    assert not torch.equal(run[2], other_rank[0])


def test_resume_restores_states_sampler_seed_and_worker_seed():
    """before_save_checkpoint -> after_load_checkpoint -> before_train on a runner stand-in."""
    sampler = SimpleNamespace(seed=11)
    loader = SimpleNamespace(sampler=sampler, num_workers=0, worker_init_fn=None, generator=None)
    runner = SimpleNamespace(train_dataloader=loader, iter=6, epoch=2, seed=11,
                             train_loop=SimpleNamespace())
    hook = RandomStateHook()
    torch.manual_seed(4)
    ckpt = {'meta': {'epoch': 2, 'iter': 6}}
    hook.before_save_checkpoint(runner, ckpt)
    expected = _draws()

    sampler.seed = 99  # a resumed run without --seed draws a new seed before resume() restores the runner's
    torch.manual_seed(123)
    fresh = RandomStateHook()
    fresh.after_load_checkpoint(runner, ckpt)
    fresh.before_train(runner)
    assert sampler.seed == 11
    assert _draws() == expected
