"""Training reliability for ``tools/train.py`` (importing registers the hooks into MMPose's HOOKS registry):

* :class:`RandomStateHook` - the run's random state in each checkpoint: ``--resume`` is bit-exact;
* :class:`AtomicCheckpointHook` - checkpoints written whole or not at all; :func:`latest_usable_checkpoint`;
* :class:`CheckLoadedWeightsHook` - refuse ``load_from`` weights of another model.

:func:`add_training_hooks` puts them into a config (MMPose's own ``tools/train.py`` works too with
``custom_imports=dict(imports=['kpt_plugin', 'kpt_plugin.training'])`` and the hooks in ``custom_hooks``).
"""
from .checkpoint import AtomicCheckpointHook, atomic_save, latest_usable_checkpoint, read_checkpoint
from .randomness import EpochSeededWorkers, RandomStateHook, get_rng_state, seed_all, set_rng_state
from .weights_fit import CheckLoadedWeightsHook, state_dict_fit

__all__ = ['AtomicCheckpointHook', 'atomic_save', 'latest_usable_checkpoint', 'read_checkpoint',
           'EpochSeededWorkers', 'RandomStateHook', 'get_rng_state', 'seed_all', 'set_rng_state',
           'CheckLoadedWeightsHook', 'state_dict_fit', 'add_training_hooks']

_CUSTOM = ('RandomStateHook', 'CheckLoadedWeightsHook')


def add_training_hooks(cfg):
    """Use this package's hooks in ``cfg`` (in place, idempotent): mmengine's ``CheckpointHook`` becomes
    :class:`AtomicCheckpointHook` (same arguments), the others join ``custom_hooks``, and ``custom_imports``
    names this package so the config dumped into the work dir builds on its own."""
    hooks = cfg.get('default_hooks') or {}
    ckpt = hooks.get('checkpoint')
    if ckpt is not None and ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        ckpt['type'] = 'AtomicCheckpointHook'
        ckpt['_scope_'] = 'mmpose'  # registered there: found whatever the config's default scope
    custom = list(cfg.get('custom_hooks') or [])
    have = {h.get('type') for h in custom}
    custom += [dict(type=t, _scope_='mmpose') for t in _CUSTOM if t not in have]
    cfg.custom_hooks = custom
    imports = dict(cfg.get('custom_imports') or dict(imports=[], allow_failed_imports=False))
    names = list(imports.get('imports') or [])
    if isinstance(names, str):
        names = [names]
    if __name__ not in names:
        names.append(__name__)
    imports['imports'] = names
    cfg.custom_imports = imports
    return cfg
