"""PP-TinyPose's heatmap codec (registered) and ppdet's decode: :func:`ppdet_decode` is ppdet's own loop structure
(the codec's decode, bit-identical to ppdet, DARK on/off); :func:`decode_heatmaps` does the same DARK steps on whole
arrays for the predict path. Both share the argmax, the blur and the back-projection."""
from .pp_decode import decode_heatmaps
from .pp_heatmap import PPTinyPoseHeatmap, blur_padded, ppdet_decode

__all__ = ['PPTinyPoseHeatmap', 'ppdet_decode', 'decode_heatmaps', 'blur_padded']
