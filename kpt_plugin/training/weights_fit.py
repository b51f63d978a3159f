"""Refuse ``load_from`` weights that do not belong to the model (mmengine loads them non-strictly and trains
from random init with only a warning); a head of another size (another keypoint count) stays legitimate."""
import re

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from ..errors import WeightsError

__all__ = ['state_dict_fit', 'CheckLoadedWeightsHook']


def state_dict_fit(model_state, file_state):
    """How a checkpoint's tensors fit a model's.

    Args:
        model_state (dict): ``model.state_dict()``.
        file_state (dict): The checkpoint's state dict (``module.`` prefixes already stripped).

    Returns:
        dict: ``total`` (model tensors), ``loaded`` (same name and shape), ``missing`` (not in the file),
        ``mismatched`` (another shape), ``unexpected`` (in the file, not in the model), ``file`` (file tensors).
    """
    loaded = missing = mismatched = 0
    for name, value in model_state.items():
        if name not in file_state:
            missing += 1
        elif tuple(getattr(file_state[name], 'shape', ())) != tuple(value.shape):
            mismatched += 1
        else:
            loaded += 1
    unexpected = sum(1 for k in file_state if k not in model_state)
    return dict(total=len(model_state), loaded=loaded, missing=missing, mismatched=mismatched,
                unexpected=unexpected, file=len(file_state))


@HOOKS.register_module()
class CheckLoadedWeightsHook(Hook):
    """Raise :class:`WeightsError` when fewer than ``min_fraction`` of the model's tensors load from the
    checkpoint given as ``load_from`` (or resumed from).

    Args:
        min_fraction (float): Share of the model's tensors (by count) that must load. 0.5: a new head loses a
            handful of tensors, another model loses nearly all.
    """

    priority = 'VERY_HIGH'

    def __init__(self, min_fraction=0.5):
        self.min_fraction = min_fraction

    def after_load_checkpoint(self, runner, checkpoint):
        state = checkpoint.get('state_dict', checkpoint)
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}  # as mmengine's revise_keys
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        fit = state_dict_fit(model.state_dict(), state)
        if fit['loaded'] >= self.min_fraction * fit['total']:
            return
        option = '--resume' if runner.cfg.get('resume') else 'load_from'
        raise WeightsError(
            f"{option} {runner.cfg.get('load_from')}: only {fit['loaded']} of the model's {fit['total']} tensors "
            f"load from it ({fit['missing']} not in the file, {fit['mismatched']} of another shape; "
            f"{fit['unexpected']} of its {fit['file']} tensors unused): it is not a checkpoint of this model. "
            'Pass weights converted for this config (kpt-plugin convert, docs/training.md), or '
            '--cfg-options load_from=None to train from scratch')
