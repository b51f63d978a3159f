"""Name mapping between the source framework (PaddleDetection) and our models, one module per model family.

A family module defines

* ``to_mmpose(state)`` / ``from_mmpose(state)``: whole state dicts ``{name: numpy array}`` (order kept; a family
  may drop or restore source-only entries here, and ``from_mmpose`` drops the BN counters);
* ``to_mmpose_name(name)``: one source tensor name -> our name (how the slot tables are named in our models);
* ``KEY_PREFIXES``: tensor-name prefixes (source or ours) only this family has, to tell a state dict's family;
* ``DEPLOY_ARCHS``: the ``arch`` values PaddleDetection's ``infer_cfg.yml`` gives this family's exports;
* optionally ``export_constants(input_size)``: ``{role: array}``, non-weight tensors that an exported program
  bakes in (PicoDet's anchors); readers verify and drop them.

Which tensors exist is the slot tables' business (:mod:`weight_convert.tables`); which family an architecture
belongs to is in :mod:`weight_convert.archs`.
"""
import importlib

import numpy as np

from ..archs import FAMILIES

__all__ = ['get_family', 'to_mmpose', 'from_mmpose', 'family_of_names', 'family_of_deploy_arch', 'drop_constants']


def get_family(name):
    """The family module ``weight_convert.families.<name>``."""
    return importlib.import_module(f'{__name__}.{name}')


def to_mmpose(family, state):
    """``{source name: array}`` -> ``{our name: float32 array}`` with ``family``'s mapping."""
    return get_family(family).to_mmpose(state)


def from_mmpose(family, state):
    """``{our name: array}`` -> ``{source name: float32 array}`` with ``family``'s mapping."""
    return get_family(family).from_mmpose(state)


def family_of_names(names):
    """The family whose ``KEY_PREFIXES`` most tensor names start with (ppdet's or ours), else None."""
    names = list(names)
    hits = {f: sum(n.startswith(get_family(f).KEY_PREFIXES) for n in names) for f in FAMILIES}
    best = max(hits, key=hits.get)
    return best if hits[best] else None


def family_of_deploy_arch(arch):
    """The family of an ``infer_cfg.yml`` ``arch`` (``HRNet``, ``PicoDet``), else None."""
    for f in FAMILIES:
        if arch in get_family(f).DEPLOY_ARCHS:
            return f
    return None


def drop_constants(family, tensors, input_sizes):
    """Remove the export constants of ``family`` (``export_constants``) from ``{name: array}``, in place.

    A tensor counts when it equals a constant of one of ``input_sizes`` exactly; the size matching the most wins.

    Returns:
        tuple: ``{name: role}`` of the dropped tensors, and the input size they imply (None when they would fit
        any size: the DFL projection alone is the same at every size).
    """
    make = getattr(get_family(family), 'export_constants', None) if family else None
    if make is None or not input_sizes:
        return {}, None

    def matches(size):
        consts = make(size)
        return {n: role for n, a in tensors.items() for role, c in consts.items()
                if np.shape(a) == c.shape and np.array_equal(a, c)}

    by_size = {size: matches(size) for size in input_sizes}
    best = max(input_sizes, key=lambda s: len(by_size[s]))
    for n in by_size[best]:
        del tensors[n]
    telling = len(input_sizes) == 1 or len(by_size[best]) > min(len(m) for m in by_size.values())
    return by_size[best], best if telling and by_size[best] else None
