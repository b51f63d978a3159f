"""PaddleDetection-faithful top-down transforms (registered in MMPose's ``TRANSFORMS``)."""
from .pp_topdown_transforms import (PPGetBBoxCenterScale, PPTopdownAffine, pp_box_to_center_scale,
                                    pp_udp_warp_matrix)

__all__ = ['PPGetBBoxCenterScale', 'PPTopdownAffine', 'pp_box_to_center_scale', 'pp_udp_warp_matrix']
