"""``create_pipeline('human_keypoint_detection')`` against PaddleX 3.7.2's own pipeline (PicoDet-320 -> TinyPose).

Goldens: ``../shared/fixtures/paddlex/pipeline/picodet320_tinypose{size}/{noflip,flip}/STEM.json``: the same persons,
boxes <= 0.01 px, keypoints <= 0.05 px for >= 99 % of the joints (a multi-peak heatmap can flip under a tiny box
change; the test lists any joint beyond).
"""
import glob
import json
import os.path as osp

import numpy as np
import pytest

import kpt_plugin

SIZES = ('128x96', '256x192')


def _image(shared, stem):
    for folder in ('data/coco_val2017_mini', 'data/demo'):
        p = osp.join(shared, folder, f'{stem}.jpg')
        if osp.isfile(p):
            return p
    raise FileNotFoundError(stem)


@pytest.fixture(scope='module')
def det_weights(shared_dir):
    return osp.join(shared_dir, 'fixtures', 'picodet', 'picodet_s_320_lcnet_pedestrian_folded.pdparams')


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('flip', [False, True], ids=['noflip', 'flip'])
def test_pipeline_equals_paddlex(shared_dir, det_weights, size, flip):
    kpt = osp.join(shared_dir, 'weights', 'paddlex_inference_enhance', f'PP-TinyPose_{size}')
    pipe = kpt_plugin.create_pipeline('human_keypoint_detection', det_model_dir=det_weights, kpt_model_dir=kpt,
                                      kpt_model=f'PP-TinyPose_{size}', flip=flip, device='cpu')
    folder = osp.join(shared_dir, 'fixtures', 'paddlex', 'pipeline', f'picodet320_tinypose{size}',
                      'flip' if flip else 'noflip')
    files = sorted(glob.glob(osp.join(folder, '*.json')))
    assert len(files) == 7
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    results = list(pipe.predict([_image(shared_dir, s) for s in stems], batch_size=3))
    joints, far = 0, []
    for stem, f, res in zip(stems, files, results):
        with open(f) as fh:
            golden = json.load(fh)['boxes']
        assert res.ok and len(res['boxes']) == len(golden), stem
        for j, (got, want) in enumerate(zip(res['boxes'], golden)):
            np.testing.assert_allclose(got['coordinate'], want['coordinate'], rtol=0, atol=0.01, err_msg=stem)
            assert abs(got['det_score'] - want['det_score']) <= 1e-4, stem
            d = np.abs(np.asarray(got['keypoints'])[:, :2] - np.asarray(want['keypoints'])[:, :2]).max(axis=1)
            joints += len(d)
            far += [(stem, j, k, round(float(v), 3)) for k, v in enumerate(d) if v > 0.05]
    assert joints > 0 and len(far) <= 0.01 * joints, f'joints beyond 0.05 px: {far}'
    assert set(results[0]) == {'input_path', 'boxes'}
    assert set(results[0]['boxes'][0]) == {'coordinate', 'det_score', 'keypoints', 'kpt_score'}


def test_detector_module_result(shared_dir, det_weights):
    """``create_model('PicoDet-S_pedestrian_320')``: PaddleX's object-detection result, boxes after NMS."""
    det = kpt_plugin.create_model('PicoDet-S_pedestrian_320', model_dir=det_weights, device='cpu')
    res = next(det.predict(_image(shared_dir, '000000040083')))
    golden = np.load(osp.join(shared_dir, 'fixtures', 'picodet', '320', '000000040083_nms_bbox.npy'))
    keep = golden[golden[:, 1] > 0.5]
    assert len(res['boxes']) == len(keep) > 0
    for got, want in zip(res['boxes'], keep):
        assert set(got) == {'cls_id', 'label', 'score', 'coordinate'} and got['label'] == 'person'
        assert abs(got['score'] - want[1]) <= 1e-4
        h, w = 333, 500  # the golden is ppdet's unclipped output; PaddleX clips to the image
        clipped = np.clip(want[2:], 0, [w, h, w, h])
        np.testing.assert_allclose(got['coordinate'], clipped, rtol=0, atol=0.05)


def test_detector_json_of_a_non_utf8_file_name_is_valid(shared_dir, det_weights, tmp_path):
    """A file name with byte 0xff (POSIX allows it) still gives a UTF-8, strict JSON file naming it escaped."""
    import json
    import os
    import shutil
    det = kpt_plugin.create_model('PicoDet-S_pedestrian_320', model_dir=det_weights, device='cpu')
    name = os.fsdecode(b'p\xff.jpg')
    shutil.copy(_image(shared_dir, '000000040083'), os.path.join(str(tmp_path), name))
    res = next(det.predict(os.path.join(str(tmp_path), name)))
    out = res.save_to_json(str(tmp_path / 'out'))
    with open(out, encoding='utf-8') as f:
        data = json.load(f)
    assert data['input_path'].endswith(name) and len(data['boxes']) > 0


def test_int8_quantises_the_keypoint_model_only(shared_dir, det_weights, tmp_path, monkeypatch):
    """``create_pipeline(precision='int8', calib=DIR)``: the keypoint model quantised, calibrated on the GT persons'
    crops of DIR; the detector on the same graph runtime at fp32 (int8 PicoDet loses its detections). The quantiser
    is replaced by a copy here (the real one runs in tests/test_inference/test_quantize.py), so the persons equal
    the fp32 pipeline's."""
    import shutil

    from kpt_plugin.inference import quantize
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    seen = []

    def copy(fp32, out, crops, **kw):
        seen.append(crops.shape)
        shutil.copyfile(fp32, out)

    monkeypatch.setattr(quantize, 'quantize_onnx', copy)
    kpt = osp.join(shared_dir, 'weights', 'paddlex_inference_enhance', 'PP-TinyPose_128x96')
    calib = osp.join(shared_dir, 'data', 'coco_val2017_mini')
    kw = dict(det_model_dir=det_weights, kpt_model_dir=kpt, device='cpu')
    pipe = kpt_plugin.create_pipeline('human_keypoint_detection', precision='int8', calib=calib,
                                      backend='onnxruntime', **kw)
    assert (pipe.kpt_model.precision, pipe.det_model.precision) == ('int8', 'fp32')
    assert pipe.det_model.backend == pipe.kpt_model.backend == 'onnxruntime'
    img = _image(shared_dir, '000000040083')
    got = next(pipe.predict(img, errors='raise'))
    assert seen == [(12, 3, 128, 96)]
    want = next(kpt_plugin.create_pipeline('human_keypoint_detection', **kw).predict(img))
    assert len(got['boxes']) == len(want['boxes']) > 0
    for a, b in zip(got['boxes'], want['boxes']):
        np.testing.assert_allclose(a['coordinate'], b['coordinate'], rtol=0, atol=1e-2)
        np.testing.assert_allclose(a['keypoints'], b['keypoints'], rtol=0, atol=1e-2)
