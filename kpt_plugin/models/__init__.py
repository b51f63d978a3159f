"""Registered modules by model family: :mod:`.pose` (PP-TinyPose, MMPose registry)."""
from .pose import *  # noqa: F401,F403
