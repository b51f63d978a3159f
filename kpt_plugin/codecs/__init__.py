"""PP-TinyPose's heatmap codec (registered) and ppdet's decode: :func:`ppdet_decode` is ppdet's own loop structure
(the codec's decode, bit-identical to ppdet, DARK on/off); :func:`decode_heatmaps` does the same DARK steps on whole
arrays for the predict path. Both share the argmax, the blur and the back-projection. Names load on first use
(:mod:`kpt_plugin.registration` registers the codec)."""
from .._lazy import lazy_exports

__all__ = ['PPTinyPoseHeatmap', 'ppdet_decode', 'decode_heatmaps', 'blur_padded']
__getattr__, __dir__ = lazy_exports(__name__, dict(PPTinyPoseHeatmap='.pp_heatmap', ppdet_decode='.pp_decode',
                                                   decode_heatmaps='.pp_decode', blur_padded='.pp_decode'))
