"""Checkpoints that survive ``kill -9``: written atomically, read with one clear error, resumed from the newest
whole one.

* :class:`AtomicCheckpointHook` - mmengine's ``CheckpointHook`` whose files appear whole or not at all (temp file
  + fsync + rename in the same folder); the checkpoints it rotates out are deleted only once the new one is in
  place.
* :func:`read_checkpoint` - the restricted loader (:func:`weight_convert.io.load_checkpoint`) with a one-line
  :class:`~kpt_plugin.errors.WeightsError` for a truncated, corrupt or foreign file.
* :func:`latest_usable_checkpoint` - ``--resume`` without a path: the work dir's latest checkpoint, or the newest
  earlier one that loads when the latest does not.
"""
import functools
import glob
import os
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmpose.registry import HOOKS

from weight_convert.io import atomic_output, load_checkpoint
from weight_convert.safe_pickle import UnsafePickleError

from ..errors import WeightsError

__all__ = ['AtomicCheckpointHook', 'read_checkpoint', 'latest_usable_checkpoint', 'atomic_save']

_STEP = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _reason(exc):
    text = str(exc).strip().splitlines()
    text = text[0] if text else ''
    return f'{type(exc).__name__}: {text[:160]}' if text else type(exc).__name__


def read_checkpoint(path, option='load_from', training=False):
    """Load ``path`` on the CPU, or raise a one-line :class:`WeightsError` naming it and what to do.

    Args:
        path (str): The checkpoint file.
        option (str): How the user gave it (``--resume``, ``load_from``), for the message.
        training (bool): Require mmengine's training state (``meta`` with epoch and iter, ``state_dict``).

    Returns:
        dict: The checkpoint.
    """
    if not osp.isfile(path):
        raise WeightsError(f'{option} {path}: no such file')
    try:
        ckpt = load_checkpoint(path, map_location='cpu')
    except UnsafePickleError as e:  # its message names the file and the refused global
        raise WeightsError(f'{option}: {e}') from e
    except Exception as e:  # noqa: BLE001 - zip, pickle, EOF and storage errors all mean an unusable file
        hint = ('resume from an earlier one (--resume without a path takes the newest that loads) or delete it'
                if option == '--resume' else 'convert or download it again')
        raise WeightsError(f'{option} {path}: the file is truncated or corrupt ({_reason(e)}); {hint}') from e
    if training:
        meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
        if not isinstance(meta, dict) or 'epoch' not in meta or 'iter' not in meta or 'state_dict' not in ckpt:
            raise WeightsError(f'{option} {path}: not a training checkpoint (no meta epoch/iter or state_dict, '
                               'e.g. converted weights); pass it as --load-from to fine-tune from it')
    return ckpt


def _candidates(work_dir):
    """The work dir's checkpoints to try, newest first: ``last_checkpoint``'s, then epoch_N / iter_N by N."""
    first = None
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record, encoding='utf-8', errors='replace') as f:
            first = f.read().strip() or None
    folders = {work_dir} | ({osp.dirname(first)} if first else set())
    steps = []
    for folder in folders:
        for path in glob.glob(osp.join(folder, '*.pth')):
            m = _STEP.match(osp.basename(path))
            if m:
                steps.append((int(m.group(2)), osp.getmtime(path), path))
    ordered = [p for _, _, p in sorted(steps, reverse=True)]
    if first is not None:
        ordered = [first] + [p for p in ordered if osp.abspath(p) != osp.abspath(first)]
    return first, ordered


def latest_usable_checkpoint(work_dir):
    """The checkpoint ``--resume`` (no path) continues from.

    Returns:
        tuple: ``(path, skipped)`` - ``path`` is None when the work dir has no checkpoint; ``skipped`` lists
        ``(path, reason)`` of newer ones that do not load.

    Raises:
        WeightsError: There are checkpoints but none loads.
    """
    first, ordered = _candidates(work_dir)
    skipped = []
    for path in ordered:
        try:
            read_checkpoint(path, '--resume', training=True)
        except WeightsError as e:
            skipped.append((path, str(e)))
            continue
        return path, skipped
    if not ordered:
        return None, skipped
    names = ', '.join(osp.basename(p) for p, _ in skipped)
    raise WeightsError(f'--resume: no usable checkpoint in {work_dir} ({names}: {skipped[0][1]}); delete them '
                       'to train from the start, or pass --resume PATH')


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(save):
    """Wrap ``Runner.save_checkpoint`` so that local files are written to a temp file and renamed into place."""
    if getattr(save, '_kpt_atomic', False):
        return save

    @functools.wraps(save)
    def save_checkpoint(out_dir, filename, *args, **kwargs):
        remote = '://' in str(out_dir) or kwargs.get('backend_args') or (args and args[0]) \
            or kwargs.get('file_client_args')
        if remote:
            return save(out_dir, filename, *args, **kwargs)
        path = osp.join(out_dir, filename)
        with atomic_output(path) as tmp:
            result = save(osp.dirname(tmp), osp.basename(tmp), *args, **kwargs)
            if not osp.getsize(tmp):  # nothing written (not the main process): keep what is there
                raise RuntimeError(f'save_checkpoint wrote nothing to {tmp}')
            _fsync(tmp)  # data on disk before the rename, so a power loss cannot leave an empty file either
        _fsync(osp.dirname(osp.abspath(path)))
        return result

    save_checkpoint._kpt_atomic = True
    return save_checkpoint


class _DeferRemovals:
    """A file backend proxy that collects ``remove`` / ``rmtree`` instead of running them."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def remove(self, path):
        self.pending.append(('remove', path))

    def rmtree(self, path):
        self.pending.append(('rmtree', path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose saves cannot leave a truncated file.

    Local checkpoints are written to ``.NAME.*.part`` beside the target, fsynced and renamed; the kept
    checkpoints mmengine rotates out (``max_keep_ckpts``, the previous best) are deleted only after the new file
    is complete, and ``last_checkpoint`` is rewritten atomically after mmengine's in-place write (an empty one,
    from a kill inside that write, makes ``--resume`` fall back to scanning the folder). Part files left by a
    killed run are removed when training starts.
    """

    def before_train(self, runner):
        super().before_train(runner)
        if not is_main_process() or '://' in str(self.out_dir):
            return
        runner.save_checkpoint = atomic_save(runner.save_checkpoint)
        stale = glob.glob(osp.join(glob.escape(self.out_dir), '.*.pth.*.part'))
        for path in stale:
            os.remove(path)
        if stale:
            print_log(f'removed {len(stale)} partial checkpoint file(s) left by an interrupted save in '
                      f'{self.out_dir}', logger='current')

    def _deferred(self, save, *args):
        backend = self.file_backend
        self.file_backend = proxy = _DeferRemovals(backend)
        try:
            save(*args)
        finally:
            self.file_backend = backend
        for op, path in proxy.pending:
            getattr(backend, op)(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        self._deferred(super()._save_checkpoint_with_step, runner, step, meta)
        if is_main_process() and '://' not in str(self.out_dir):
            # mmengine rewrote it in place; a reader must never see it empty
            from weight_convert.io import atomic_write_text
            atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)

    def _save_best_checkpoint(self, runner, metrics):
        self._deferred(super()._save_best_checkpoint, runner, metrics)
