"""PaddleDetection-faithful top-down transforms (registered in MMPose's ``TRANSFORMS``)."""
from .pp_topdown_transforms import (PPGetBBoxCenterScale, PPTopdownAffine, pp_box_to_center_scale,
                                    pp_udp_warp_matrix)
from .pp_train_transforms import PPAIDCutout, PPRandomBBoxTransform

__all__ = [
    'PPGetBBoxCenterScale', 'PPTopdownAffine', 'pp_box_to_center_scale', 'pp_udp_warp_matrix',
    'PPAIDCutout', 'PPRandomBBoxTransform'
]
