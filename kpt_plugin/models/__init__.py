"""Registered modules by model family: :mod:`.pose` (PP-TinyPose, MMPose registry) and :mod:`.detection`
(PP-PicoDet-S-LCNet pedestrian, mmdet registry)."""
from .detection import *  # noqa: F401,F403
from .pose import *  # noqa: F401,F403
