from .pp_heatmap import PPTinyPoseHeatmap, ppdet_decode

__all__ = ['PPTinyPoseHeatmap', 'ppdet_decode']
