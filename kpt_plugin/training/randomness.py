"""Bit-exact ``--resume``: the random state of a run travels in its checkpoints (``checkpoint['rng_state']``).

:class:`RandomStateHook` saves, with every checkpoint, and restores when resuming from it:

* the main process's generators: python ``random``, numpy's global one, torch's CPU one (and CUDA's);
* the train sampler's seed (mmengine builds the dataloader before ``Runner.resume`` restores the seed);
* dataloader workers: reseeded at their first sample of every epoch from (seed, rank, worker id, epoch), so what
  they draw is a function of the epoch and not of how long the worker process has lived (persistent workers),
  and a resumed run's new workers draw what the uninterrupted run's workers drew.

Validation runs inside a saved/restored random state: the uninterrupted run validates after it saved a checkpoint,
the resumed one does not, so validation must not shift training's stream. After the run, the train dataloader's
persistent workers are stopped (left to the garbage collector, their shutdown took 5 s per worker).
"""
import functools
import multiprocessing
import random

import numpy as np
import torch
from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpose.registry import HOOKS

__all__ = ['RandomStateHook', 'EpochSeededWorkers', 'get_rng_state', 'set_rng_state', 'seed_all']

_VERSION = 1


def get_rng_state() -> dict:
    """The state of this process's global generators, as tensors and plain values (``weights_only`` loadable)."""
    version, internal, gauss = random.getstate()
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = dict(python=dict(version=version, state=torch.tensor(internal, dtype=torch.int64), gauss=gauss),
                 numpy=dict(key=torch.from_numpy(key.astype(np.int64)), pos=int(pos), has_gauss=int(has_gauss),
                            gauss=float(cached)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned (tensors may have been mapped to another device)."""
    py = state['python']
    random.setstate((py['version'], tuple(int(v) for v in py['state'].tolist()), py['gauss']))
    nps = state['numpy']
    np.random.set_state(('MT19937', nps['key'].cpu().numpy().astype(np.uint32), nps['pos'], nps['has_gauss'],
                         nps['gauss']))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def seed_all(*entropy: int) -> None:
    """Seed python, numpy and torch from the integers ``entropy`` (numpy's SeedSequence mixes them)."""
    words = np.random.SeedSequence([int(e) & 0xFFFFFFFFFFFFFFFF for e in entropy]).generate_state(4, np.uint32)
    random.seed(int(words[0]) | int(words[1]) << 32)
    np.random.seed(words[:2])
    torch.manual_seed(int(words[2]) | int(words[3]) << 32)


class EpochSeededWorkers:
    """A dataloader ``worker_init_fn``: each worker reseeds at its first batch of every epoch.

    The epoch lives in shared memory (set by :class:`RandomStateHook` before each epoch's iterator starts), because
    persistent workers run ``worker_init_fn`` only once. The reseed sits in the worker's dataset ``__getitems__``,
    which torch's map-style fetcher calls for every batch.

    Args:
        seed (int): The run's seed.
        rank (int): This process's rank.
        epoch (int): The epoch the first iterator belongs to.
        disable_subprocess_warning (bool): Silence warnings in workers other than 0 (as mmengine's default).
    """

    def __init__(self, seed, rank, epoch=0, disable_subprocess_warning=False):
        self.seed = seed
        self.rank = rank
        self.epoch = multiprocessing.Value('q', epoch, lock=False)
        self.disable_subprocess_warning = disable_subprocess_warning

    def __call__(self, worker_id):
        import warnings
        if self.disable_subprocess_warning and worker_id != 0:
            warnings.simplefilter('ignore')
        dataset = torch.utils.data.get_worker_info().dataset
        fetch = getattr(dataset, '__getitems__', None)
        seen = [None]

        def getitems(indices):
            epoch = self.epoch.value
            if epoch != seen[0]:
                seed_all(self.seed, self.rank, worker_id, epoch)
                seen[0] = epoch
            return fetch(indices) if fetch else [dataset[i] for i in indices]

        dataset.__getitems__ = getitems  # only this worker's copy of the dataset
        seed_all(self.seed, self.rank, worker_id, self.epoch.value)


def _is_default_init_fn(fn):
    return fn is None or (isinstance(fn, functools.partial) and fn.func is mmengine_worker_init_fn)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the run's random state in each checkpoint and restore it on resume (see the module docstring).

    Priority NORMAL: it must gather the ranks' states in ``after_train_epoch`` before ``CheckpointHook``
    (VERY_LOW) saves; no default hook draws random numbers in the events it shares with this one.
    """

    priority = 'NORMAL'

    def __init__(self):
        self._loaded = None        # (iter, rng_state) of the last checkpoint loaded
        self._val_state = None     # the state before validation, restored after it
        self._gathered = None      # (iter, [state of each rank]) at the end of the last epoch (distributed)
        self._workers = None       # EpochSeededWorkers installed on the train dataloader
        self._loader = None        # the train dataloader (its persistent workers are stopped after the run)

    # ------------------------------------------------------------ setup and restore
    def after_load_checkpoint(self, runner, checkpoint):
        meta = checkpoint.get('meta') or {}
        self._loaded = (meta.get('iter'), checkpoint.get('rng_state'))

    def before_train(self, runner):
        self._loader = loader = runner.train_dataloader
        self._install_workers(runner, loader)
        # resume() sets the loop's iter from the checkpoint; load_from leaves it at 0
        if self._loaded is None or runner.iter == 0 or self._loaded[0] != runner.iter:
            return
        state = self._loaded[1]
        self._loaded = None
        if not state or state.get('version') != _VERSION:
            print_log('the resumed checkpoint carries no random state (saved without RandomStateHook): random '
                      'augmentation from here on differs from an uninterrupted run', logger='current', level=30)
            return
        rank, world = get_dist_info()
        ranks = state['ranks']
        if len(ranks) != world:
            print_log(f'the resumed checkpoint has the random state of {len(ranks)} process(es), this run has '
                      f'{world}: processes without a saved state keep their fresh seeds', logger='current', level=30)
        if rank < len(ranks):
            set_rng_state(ranks[rank])
        sampler = getattr(loader, 'sampler', None)
        if state.get('sampler_seed') is not None and hasattr(sampler, 'seed'):
            sampler.seed = state['sampler_seed']
        if self._workers is not None and state.get('worker_seed') is not None:
            self._workers.seed = state['worker_seed']
        exact = isinstance(runner.train_loop, EpochBasedTrainLoop) and runner.iter == runner.epoch * len(loader)
        print_log(f'restored the random state of iteration {runner.iter} (python, numpy, torch, sampler seed '
                  f'{state.get("sampler_seed")}, worker seed {state.get("worker_seed")})', logger='current')
        if not exact:
            print_log('the checkpoint is not at an epoch boundary of an epoch-based loop: mmengine replays '
                      'data to reach it, so the resumed run is not bit-exact', logger='current', level=30)

    def _install_workers(self, runner, loader):
        # draws for the workers' base seed come from a private generator: persistent workers draw it once per
        # run, so on the global generator a resumed run would be one draw ahead (our reseed replaces it anyway)
        loader.generator = torch.Generator().manual_seed(runner.seed & 0xFFFFFFFFFFFFFFFF)
        if loader.num_workers == 0:
            return
        fn = loader.worker_init_fn
        if not _is_default_init_fn(fn):
            print_log('train_dataloader has its own worker_init_fn: its workers are not reseeded per epoch and a '
                      'resumed run may draw other augmentations', logger='current', level=30)
            return
        quiet = bool(fn.keywords.get('disable_subprocess_warning')) if fn is not None else False
        self._workers = EpochSeededWorkers(runner.seed, get_dist_info()[0], runner.epoch, quiet)
        loader.worker_init_fn = self._workers

    def before_train_epoch(self, runner):
        if self._workers is not None:  # before the epoch's iterator hands out its first index
            self._workers.epoch.value = runner.epoch

    # ------------------------------------------------------------ save
    def after_train_epoch(self, runner):
        if get_dist_info()[1] > 1:  # a collective: every rank is here, unlike in before_save_checkpoint
            states = all_gather_object(self._val_state or get_rng_state())
            self._gathered = (runner.iter, states)

    def before_save_checkpoint(self, runner, checkpoint):
        if self._gathered is not None and self._gathered[0] == runner.iter:
            ranks = self._gathered[1]
        else:
            ranks = [self._val_state or get_rng_state()]  # a best checkpoint saved during validation: pre-val
        loader = runner.train_dataloader
        checkpoint['rng_state'] = dict(
            version=_VERSION, ranks=ranks, sampler_seed=getattr(getattr(loader, 'sampler', None), 'seed', None),
            worker_seed=self._workers.seed if self._workers is not None else None)

    # ------------------------------------------------------------ validation leaves training's stream alone
    def before_val(self, runner):
        self._val_state = get_rng_state()

    def after_val(self, runner):
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None

    def after_run(self, runner):
        # Stop the persistent workers now: left to the garbage collector (a later run in the same process, a
        # notebook, the test suite) their shutdown waited out torch's 5 s join timeout per worker.
        iterator = getattr(self._loader, '_iterator', None)
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()
        self._loader = None
