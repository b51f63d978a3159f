"""Name mapping between the source framework (PaddleDetection) and MMPose, one module per model family.

A family module defines

* ``to_mmpose(state)`` / ``from_mmpose(state)``: whole state dicts ``{name: numpy array}`` (order kept; a family
  may drop or restore source-only entries here, and ``from_mmpose`` drops MMPose's BN counters);
* ``to_mmpose_name(name)``: one source tensor name -> its MMPose name (how the slot tables are named in MMPose).

Which tensors exist is the slot tables' business (:mod:`weight_convert.tables`); which family an architecture
belongs to is in :mod:`weight_convert.archs`.
"""
import importlib

__all__ = ['get_family', 'to_mmpose', 'from_mmpose']


def get_family(name):
    """The family module ``weight_convert.families.<name>``."""
    return importlib.import_module(f'{__name__}.{name}')


def to_mmpose(family, state):
    """``{source name: array}`` -> ``{MMPose name: float32 array}`` with ``family``'s mapping."""
    return get_family(family).to_mmpose(state)


def from_mmpose(family, state):
    """``{MMPose name: array}`` -> ``{source name: float32 array}`` with ``family``'s mapping."""
    return get_family(family).from_mmpose(state)
