"""``build_estimator`` builds what MMPose's ``init_model`` builds (without importing ``mmpose.apis``)."""
import os.path as osp

import numpy as np
import pytest


def _same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _configs():
    import mmpose
    from kpt_plugin.zoo import MODELS, get_config_path
    ours = sorted({get_config_path(name) for name in MODELS if 'PicoDet' not in name})
    # a stock MMPose config too: its train set has no ``metainfo`` (the dataset class's is used)
    stock = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', 'body_2d_keypoint', 'topdown_heatmap', 'coco',
                     'td-hm_litehrnet-18_8xb64-210e_coco-256x192.py')
    return ours + [stock]


@pytest.mark.parametrize('config', _configs(), ids=osp.basename)
def test_build_estimator_equals_mmpose_init_model(config):
    from mmpose.apis import init_model
    from kpt_plugin.inference.nets import build_estimator
    assert osp.isfile(config), config
    ours, theirs = build_estimator(config), init_model(config, checkpoint=None, device='cpu')
    assert type(ours) is type(theirs) and not ours.training and not theirs.training
    assert _same(ours.dataset_meta, theirs.dataset_meta) and ours.dataset_meta['num_keypoints'] == 17
    assert ours.cfg.to_dict() == theirs.cfg.to_dict()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)
