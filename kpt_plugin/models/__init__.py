"""Registered modules by model family: :mod:`.pose` (PP-TinyPose, MMPose registry) and :mod:`.detection`
(PP-PicoDet-S-LCNet pedestrian, mmdet registry). Names load on first use (:mod:`kpt_plugin.registration`
registers them)."""
from .._lazy import lazy_exports
from .detection import __all__ as _detection
from .pose import __all__ as _pose

__all__ = list(_detection) + list(_pose)
__getattr__, __dir__ = lazy_exports(__name__, {**{n: '.detection' for n in _detection}, **{n: '.pose' for n in _pose}})
