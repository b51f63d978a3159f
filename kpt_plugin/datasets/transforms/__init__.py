"""PaddleDetection-faithful top-down transforms (registered in MMPose's ``TRANSFORMS``); names load on first use."""
from ..._lazy import lazy_exports

__all__ = [
    'PPGetBBoxCenterScale', 'PPTopdownAffine', 'pp_box_to_center_scale', 'pp_udp_warp_matrix',
    'PPAIDCutout', 'PPRandomBBoxTransform'
]
__getattr__, __dir__ = lazy_exports(__name__, dict(
    PPGetBBoxCenterScale='.pp_topdown_transforms', PPTopdownAffine='.pp_topdown_transforms',
    pp_box_to_center_scale='.pp_crop', pp_udp_warp_matrix='.pp_crop', PPAIDCutout='.pp_train_transforms',
    PPRandomBBoxTransform='.pp_train_transforms'))
