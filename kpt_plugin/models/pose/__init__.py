"""PP-TinyPose's backbone, registered into MMPose's ``MODELS`` (the head is MMPose's ``HeatmapHead``); names load on
first use."""
from ..._lazy import lazy_exports

__all__ = ['PPLiteHRNet', 'PADDLE_LITEHRNET_ARCHS', 'paddle_litehrnet_extra']
__getattr__, __dir__ = lazy_exports(__name__, dict(PPLiteHRNet='.pp_litehrnet', PADDLE_LITEHRNET_ARCHS='.pp_litehrnet',
                                                   paddle_litehrnet_extra='.pp_litehrnet'))
