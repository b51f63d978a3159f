"""PP-TinyPose's backbone, registered into MMPose's ``MODELS`` (the head is MMPose's ``HeatmapHead``)."""
from .pp_litehrnet import PADDLE_LITEHRNET_ARCHS, PPLiteHRNet, paddle_litehrnet_extra

__all__ = ['PPLiteHRNet', 'PADDLE_LITEHRNET_ARCHS', 'paddle_litehrnet_extra']
