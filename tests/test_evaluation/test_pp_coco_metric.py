"""PPCocoMetric reproduces ppdet's rescoring, OKS-NMS, results json and AP from ppdet's raw predictions."""
import json
import os.path as osp

import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo

import kpt_plugin  # noqa: F401
from kpt_plugin.evaluation import PPCocoMetric, pp_oks_nms, pp_rescore
from kpt_plugin.evaluation.pp_coco_metric import COCO_SIGMAS

META = parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py'))
RUNS = [(s, f) for s in ('128x96', '256x192') for f in ('flip', 'noflip')]


def _samples(all_preds, all_boxes, im_ids):
    """Data samples as the evaluator hands them over (dicts), one per instance."""
    out = []
    for i, (p, b, im) in enumerate(zip(all_preds, all_boxes, im_ids)):
        out.append(dict(
            id=i, img_id=int(im), category_id=1, input_center=b[:2].astype(np.float32),
            pred_instances=dict(keypoints=p[None, :, :2], keypoint_scores=p[None, :, 2]),
            gt_instances=dict(bbox_scores=np.array([b[5]]),
                              bbox_scales=(b[2:4].astype(np.float32) * np.float32(200.0))[None])))
    return out


def _metric(shared_dir, tmp_path, **kw):
    m = PPCocoMetric(ann_file=osp.join(shared_dir, 'data', 'coco_val2017_mini', 'test_coco.json'),
                     outfile_prefix=str(tmp_path / 'res'), **kw)
    m.dataset_meta = META
    return m


@pytest.mark.parametrize('size,flip', RUNS)
def test_reproduces_ppdet_results_and_ap(shared_dir, tmp_path, size, flip):
    base = osp.join(shared_dir, 'fixtures', 'enhance', 'results', f'{size}_coco_{flip}')
    raw = np.load(base + '_raw.npz')
    with open(base + '.json') as f:
        golden = json.load(f)
    m = _metric(shared_dir, tmp_path)
    m.process({}, _samples(raw['all_preds'], raw['all_boxes'], raw['im_id']))
    metrics = m.compute_metrics(m.results)
    with open(tmp_path / 'res.keypoints.json') as f:
        ours = json.load(f)
    assert [r['image_id'] for r in ours] == [r['image_id'] for r in golden]
    for o, g in zip(ours, golden):
        assert 'bbox' not in o  # so the COCO loader takes the area from the keypoint extent, as for ppdet
        assert o['keypoints'] == g['keypoints']
        assert o['score'] == g['score']  # float64 rescoring, bit for bit
        np.testing.assert_allclose(o['center'], g['center'], rtol=0, atol=0)
        np.testing.assert_allclose(o['scale'], g['scale'], rtol=0, atol=2e-7)
    np.testing.assert_array_equal(list(metrics.values()), raw['stats'])


def test_oks_nms_and_rescoring(shared_dir, tmp_path):
    raw = np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results', '128x96_coco_flip_raw.npz'))
    preds, boxes, ims = raw['all_preds'][:1], raw['all_boxes'][:1], raw['im_id'][:1]
    # a near-duplicate (0.5 px away, lower box score) and a far copy of person 0
    dup = preds.copy()
    dup[..., :2] += 0.5
    far = preds.copy()
    far[..., 0] += 200
    all_preds = np.concatenate([preds, dup, far])
    all_boxes = np.concatenate([boxes, boxes, boxes])
    all_boxes[1:, 5] = [0.5, 0.4]
    m = _metric(shared_dir, tmp_path)
    m.process({}, _samples(all_preds, all_boxes, np.repeat(ims, 3)))
    m.compute_metrics(m.results)
    with open(tmp_path / 'res.keypoints.json') as f:
        ours = json.load(f)
    assert len(ours) == 2  # the duplicate is suppressed (OKS > 0.9), the far copy kept
    assert ours[1]['keypoints'][0] == pytest.approx(float(far[0, 0, 0]))
    assert ours[1]['score'] == pytest.approx(0.4 * pp_rescore(preds[0, :, 2], 1.0))

    m = _metric(shared_dir, tmp_path, nms_mode='none')
    m.process({}, _samples(all_preds, all_boxes, np.repeat(ims, 3)))
    m.compute_metrics(m.results)
    with open(tmp_path / 'res.keypoints.json') as f:
        assert len(json.load(f)) == 3


def test_rescore_threshold():
    s = np.array([0.9, 0.1, 0.3, 0.2], np.float32)  # 0.2 is not above the threshold
    assert pp_rescore(s, 0.5) == pytest.approx(0.5 * (float(s[0]) + float(s[2])) / 2)
    assert pp_rescore(np.zeros(4, np.float32), 1.0) == 0.0


def test_oks_nms_keeps_order_by_score():
    k = np.zeros((17, 3), np.float32)
    insts = [dict(score=0.2, keypoints=k + 100, area=1e4), dict(score=0.9, keypoints=k, area=1e4)]
    assert pp_oks_nms(insts, 0.9, COCO_SIGMAS) == [1, 0]
    assert pp_oks_nms([], 0.9, COCO_SIGMAS) == []


def test_bad_inputs(shared_dir, tmp_path):
    with pytest.raises(ValueError, match='bbox_keypoint'):
        PPCocoMetric(score_mode='keypoint')
    m = _metric(shared_dir, tmp_path)
    with pytest.raises(ValueError, match='no prediction'):
        m.compute_metrics([])
    sample = _samples(np.zeros((1, 17, 3), np.float32), np.ones((1, 6)), [785])[0]
    del sample['gt_instances']['bbox_scales']
    with pytest.raises(KeyError, match='PPGetBBoxCenterScale'):
        m.process({}, [sample])
