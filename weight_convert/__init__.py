"""Readers for PP-TinyPose weight formats and the converter to MMPose checkpoints."""
from .convert import convert  # noqa: F401
from .mapping import mmpose_to_ppdet, ppdet_to_mmpose  # noqa: F401
from .pdparams import read_pdparams  # noqa: F401
