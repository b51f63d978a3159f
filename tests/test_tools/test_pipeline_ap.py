"""End-to-end AP with our PicoDet's boxes (``tools/dev/pipeline_ap.py``): tools/test.py on them, and our pipeline's
AP side by side with PaddleX's pipeline goldens. 128x96, flip on (the configs'), PicoDet-320 (the goldens' detector).

Tolerances: the AP is a step function of the keypoints (an OKS crossing one of COCO's 10 thresholds) and of the
score order, so it is compared through ``ap_band``: the range of AP reachable when every keypoint moves by up to
EPS px and every score by up to 1e-4 (each OKS within EPS x the largest |dOKS/dpx| of this set's persons of a
threshold is tried on both sides). EPS is the project's faithful-port tolerance for the evaluation (0.01 px, ppdet
parity, docs/evaluation.md) and the pipeline's tolerance vs PaddleX (0.05 px, tests/test_inference/test_pipeline.py).
"""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

import kpt_plugin

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('kpt_pipeline_ap', osp.join(REPO, 'tools', 'dev', 'pipeline_ap.py'))
pap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pap)

SIZE = '128x96'
#: tools/test.py, PicoDet-320 boxes (score >= 0.5), flip on, on coco_val2017_mini (this project's run; the band below
#: decides how far another machine may land from it)
EXPECTED_AP_TEST_PY = 0.6567813924249567
#: the same AP computation on PaddleX 3.7.2's own pipeline outputs (fixed files: exact)
EXPECTED_AP_PADDLEX = 0.7043399339933993
EPS_EVAL_PX = 0.01
EPS_PIPELINE_PX = 0.05


@pytest.fixture(scope='module')
def paths(shared_dir):
    return pap.Paths(shared_dir)


@pytest.fixture(scope='module')
def dets_file(paths, tmp_path_factory):
    """Our PicoDet-320 detections of the 4 images as a COCO detection results json."""
    det = kpt_plugin.create_model('PicoDet-S_pedestrian_320', model_dir=paths.det_weights(320), device='cpu')
    out = str(tmp_path_factory.mktemp('pipeline_ap') / 'picodet320_dets.json')
    dets = pap.write_detections(det, paths.images(), out)
    # the persons kept at the eval threshold are exactly ppdet's PicoDet's (its golden, score > 0.5)
    with open(osp.join(paths.shared, 'fixtures', 'picodet', '320', 'person_boxes_score_gt_0p5.json')) as f:
        golden = json.load(f)
    with open(paths.ann) as f:
        sizes = {im['id']: (im['width'], im['height']) for im in json.load(f)['images']}
    for img_id, stem, _ in paths.images():
        ours = np.array([d['bbox'] + [d['score']] for d in dets if d['image_id'] == img_id
                         and d['score'] >= pap.PPDET_IMAGE_THRE]).reshape(-1, 5)
        want = np.asarray(golden[stem], np.float64).reshape(-1, 5)
        assert len(ours) == len(want) > 0, stem
        # golden: ppdet's unclipped xyxy; ours: xywh of the clipped box (PaddleX clips): compare after the same clip
        w, h = sizes[img_id]
        want_xyxy = np.clip(want[:, :4], 0, [w, h, w, h])
        ours_xyxy = np.concatenate([ours[:, :2], ours[:, :2] + ours[:, 2:4]], axis=1)
        np.testing.assert_allclose(ours_xyxy, want_xyxy, rtol=0, atol=0.01, err_msg=stem)
        assert np.abs(ours[:, 4] - want[:, 4]).max() <= 1e-4, stem
    with open(out) as f:
        assert json.load(f) == dets  # what tools/test.py reads is what was computed
    return out


def test_tools_test_py_with_our_boxes(paths, dets_file, enhance_ckpt, tmp_path):
    script = pap.load_test_script()
    argv = pap.test_py_argv(paths, SIZE, enhance_ckpt(SIZE), str(tmp_path), dets_file)
    res = pap.run_test_py(script, argv)
    assert res['flip_test'] is True
    with open(osp.join(tmp_path, 'res.keypoints.json')) as f:
        kept = json.load(f)
    assert len(kept) == 12  # 12 persons with score >= 0.5 survive OKS-NMS
    # what tools/test.py printed is the COCO eval of its results json
    stats, _ = pap.coco_keypoint_eval(paths.ann, kept)
    assert abs(stats['AP'] - res['metrics']['AP']) <= 1e-12
    band = pap.ap_band(paths.ann, kept, EPS_EVAL_PX)
    assert band['high'] - band['low'] < 0.01, band  # the check stays sharp
    assert band['low'] - 1e-9 <= EXPECTED_AP_TEST_PY <= band['high'] + 1e-9, (res['metrics'], band)


def test_pipeline_ap_equals_paddlex_goldens(paths):
    images = paths.images()
    golden = pap.persons_from_pipeline(pap.paddlex_golden_results(paths.paddlex_golden(SIZE, True), images), images)
    golden_dets = pap.pipeline_dets(golden, pap.SIZES[SIZE])
    golden_stats, _ = pap.coco_keypoint_eval(paths.ann, golden_dets)
    assert abs(golden_stats['AP'] - EXPECTED_AP_PADDLEX) <= 1e-12  # the AP code on fixed inputs: exact

    ours = pap.persons_from_pipeline(pap.our_pipeline_results(paths, images, SIZE, flip=True), images)
    assert {k: len(v) for k, v in ours.items()} == {k: len(v) for k, v in golden.items()}
    ours_dets = pap.pipeline_dets(ours, pap.SIZES[SIZE])
    ours_stats, _ = pap.coco_keypoint_eval(paths.ann, ours_dets)
    band = pap.ap_band(paths.ann, golden_dets, EPS_PIPELINE_PX)
    assert band['high'] - band['low'] < 0.02, band
    assert band['low'] - 1e-9 <= ours_stats['AP'] <= band['high'] + 1e-9, (ours_stats, band)
    # and symmetrically: PaddleX's AP is reachable from ours
    ours_band = pap.ap_band(paths.ann, ours_dets, EPS_PIPELINE_PX)
    assert ours_band['low'] - 1e-9 <= golden_stats['AP'] <= ours_band['high'] + 1e-9, (golden_stats, ours_band)


def test_ap_band_detects_a_real_change(paths):
    """The band is no blanket: every joint moved by 1 px (20x the pipeline tolerance) leaves it (the test can fail)."""
    images = paths.images()
    golden = pap.persons_from_pipeline(pap.paddlex_golden_results(paths.paddlex_golden(SIZE, True), images), images)
    dets = pap.pipeline_dets(golden, pap.SIZES[SIZE])
    band = pap.ap_band(paths.ann, dets, EPS_PIPELINE_PX)
    moved = []
    for d in dets:
        kp = np.asarray(d['keypoints']).reshape(-1, 3).copy()
        kp[:, :2] += 1.0
        moved.append(dict(d, keypoints=kp.reshape(-1).tolist()))
    stats, _ = pap.coco_keypoint_eval(paths.ann, moved)
    assert stats['AP'] < band['low'] - 0.01, (stats['AP'], band)


def test_detector_fast_paths_are_exact(paths):
    """What the pipeline's speed rests on changes no box: the traced detector network is bitwise eager, and the NMS
    on the candidates above the pipeline threshold keeps exactly the full NMS's boxes above it."""
    import cv2
    det = kpt_plugin.create_model('PicoDet-S_pedestrian_320', model_dir=paths.det_weights(320), device='cpu')
    imgs = [cv2.imread(p, cv2.IMREAD_COLOR) for _, _, p in paths.images()]
    eager = [det.detect([im]) for im in imgs]
    det._net.TRACE_AFTER = 1  # trace on the next call
    traced = [det.detect([im]) for im in imgs]
    assert any(not isinstance(v, int) for v in det._net._traced.values())  # the traced module did run
    for (e, ), (t, ) in zip(eager, traced):
        assert e.shape == t.shape and np.array_equal(e, t)
    for (e, ), im in zip(eager, imgs):
        (fast, ) = det.detect([im], min_score=0.5)
        assert np.array_equal(fast, e[e[:, 1] > 0.5]) and len(fast) > 0


@pytest.mark.parametrize('runtime', ['openvino', 'onnxruntime', 'auto'])
def test_graph_runtime_detector_keeps_the_boxes(paths, runtime, tmp_path, monkeypatch):
    """The detector on a graph runtime (what ``create_pipeline`` does with a graph keypoint backend; ``use_hpip``:
    ``auto``, the runtime measured fastest here, torch answering until it is tuned): the same persons, boxes within
    the PaddleX parity tolerance (0.01 px), scores within 1e-4; the exported graph is cached."""
    import glob
    import threading

    import cv2

    from kpt_plugin.zoo.hub import cache_dir
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    det = kpt_plugin.create_model('PicoDet-S_pedestrian_320', model_dir=paths.det_weights(320), device='cpu')
    imgs = [cv2.imread(p, cv2.IMREAD_COLOR) for _, _, p in paths.images()]
    ref = [det.detect([im], min_score=0.5)[0] for im in imgs]
    getattr(det, f'use_{runtime}')(threads=1)
    rounds = 1
    if runtime == 'auto':
        rounds = 2  # the first answers on torch (tuning in the background), the second on the winner
    for r in range(rounds):
        for im, want in zip(imgs, ref):
            (got, ) = det.detect([im], min_score=0.5)
            assert got.shape == want.shape
            np.testing.assert_allclose(got[:, 2:], want[:, 2:], rtol=0, atol=0.01)
            assert np.abs(got[:, 1] - want[:, 1]).max() <= 1e-4
        if runtime == 'auto' and r == 0:
            # not tuned before the first answers, nor behind them yet: their eager time has not paid for it
            assert det._net.auto._thread is None and det._net.auto._tunings.deferred() == [1]
            det.wait()  # starts the deferred tuning
            assert det._net.auto.describe() in ('b1=openvino/ours', 'b1=onnxruntime/ours')
    assert not [t for t in threading.enumerate() if t.name == 'kpt_plugin-tune' and t.is_alive()]
    files = dict(openvino=('openvino', 'xml'), onnxruntime=('onnx', 'onnx'))
    for rt in (['openvino', 'onnxruntime'] if runtime == 'auto' else [runtime]):
        folder, ext = files[rt]
        assert len(glob.glob(osp.join(cache_dir(), folder, f'picodet-*-320-*b1.{ext}'))) == 1, rt
