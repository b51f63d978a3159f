"""Importing this module registers every module of kpt_plugin into MMPose's and mmdet's registries.

:mod:`kpt_plugin` imports it at once in a process that has imported OpenMMLab, else the registries import it on
their first look-up (see the package docstring).
"""
from . import evaluation, training  # noqa: F401  (their package imports register)
from .codecs import pp_heatmap  # noqa: F401
from .datasets import pp_coco_dataset  # noqa: F401
from .datasets.transforms import pp_topdown_transforms, pp_train_transforms  # noqa: F401
from .models.detection import picodet  # noqa: F401  (also registers LCNet, LCPAN, PicoHeadV2)
from .models.pose import pp_litehrnet  # noqa: F401
