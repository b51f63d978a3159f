"""End to end: the shipped configs + converted official weights reproduce ppdet's evaluation.

Golden: ppdet ``tools/eval.py`` results json and AP table on ``../shared/data/coco_val2017_mini``
(enhance weights, GT boxes), both sizes, flip on and off.
"""
import importlib.util
import json
import os.path as osp

import pytest

import kpt_plugin  # noqa: F401
from kpt_plugin.zoo import get_config_path
from weight_convert.convert import convert

_PATH = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools', 'dev', 'parity.py')
_spec = importlib.util.spec_from_file_location('kpt_dev_parity', _PATH)
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)


@pytest.fixture(scope='module')
def checkpoints(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('ckpt')
    paths = {}
    for size in parity.SIZES:
        paths[size] = str(out / f'{size}.pth')
        convert(osp.join(shared_dir, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), paths[size],
                arch=f'PP-TinyPose_{size}')
    return paths


@pytest.mark.parametrize('flip', [True, False], ids=['flip', 'noflip'])
@pytest.mark.parametrize('size', parity.SIZES)
def test_results_match_ppdet(shared_dir, checkpoints, tmp_path, size, flip):
    res = parity.run_coco_eval(get_config_path(f'PP-TinyPose_{size}'), checkpoints[size],
                               osp.join(shared_dir, 'data', 'coco_val2017_mini'), 'test_coco.json',
                               str(tmp_path / 'res'), flip)
    with open(parity.golden_paths(shared_dir, size, flip)['json']) as f:
        golden = json.load(f)
    with open(res['results']) as f:
        ours = json.load(f)
    row = dict(size=size, flip=flip, ours=res['metrics'], ppdet=parity.golden_stats(shared_dir, size, flip),
               compare=parity.compare_results(ours, golden))
    assert parity.check_row(row) == [], row
    assert all('bbox' not in r for r in ours)


def test_detector_boxes_give_a_sane_ap(shared_dir, checkpoints, tmp_path):
    root = osp.join(shared_dir, 'data', 'coco_val2017_mini')
    res = parity.run_coco_eval(get_config_path('PP-TinyPose_128x96'), checkpoints['128x96'], root,
                               'test_coco.json', str(tmp_path / 'det'), flip=False,
                               bbox_file=osp.join(root, 'test_coco_det_AP_H_56.json'))
    assert res['num_instances'] == 118
    # GT boxes give 0.579 here; the detector (AP_H 56) boxes must land in the same range
    assert 0.45 < res['metrics']['AP'] < 0.8, res['metrics']
    with open(res['results']) as f:
        kept = json.load(f)
    assert 12 <= len(kept) < 118  # OKS-NMS removed duplicate detections


@pytest.mark.parametrize('size', parity.SIZES)
def test_flip_test_heatmaps_match_ppdet(shared_dir, checkpoints, size):
    """MMPose's HeatmapHead flip test is ppdet's: flip back, swap pairs, shift right 1 column, average."""
    import numpy as np
    import torch
    from mmpose.apis import init_model
    from mmpose.structures import PoseDataSample

    raw = np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results', f'{size}_coco_flip_raw.npz'))
    model = init_model(get_config_path(f'PP-TinyPose_{size}'), checkpoints[size], device='cpu')
    assert model.test_cfg['flip_test'] and model.test_cfg['shift_heatmap']
    inputs = torch.from_numpy(raw['inputs'])  # ppdet's own network inputs
    meta = dict(flip_indices=model.dataset_meta['flip_indices'], input_size=tuple(inputs.shape[:1:-1]))
    samples = [PoseDataSample(metainfo=meta) for _ in range(len(inputs))]
    with torch.no_grad():
        feats = [model.extract_feat(inputs), model.extract_feat(inputs.flip(-1))]
        _, fields = model.head.predict(feats, samples, test_cfg=dict(model.test_cfg, output_heatmaps=True))
        plain, flipped = (model.head.forward(f).numpy() for f in feats)
    heatmaps = np.stack([f.heatmaps.numpy() for f in fields])

    # ppdet's TopDownHRNet.flip on the same network outputs
    back = flipped[:, model.dataset_meta['flip_indices']][..., ::-1].copy()
    back[..., 1:] = back[..., :-1].copy()
    np.testing.assert_allclose(heatmaps, (plain + back) * 0.5, rtol=0, atol=1e-7)
    # vs ppdet's flip-averaged maps: the network's float32 numerics (up to 7e-5 at 256x192, also
    # without flip) - far below what moves a decoded joint by 0.01 px
    np.testing.assert_allclose(heatmaps, raw['heatmaps'], rtol=0, atol=1e-4)
