"""End to end with the real pipeline (PicoDet pedestrian -> PP-TinyPose, ../shared fixtures): the HTTP answer is the
pipeline's Python result, number for number."""
import base64
import os.path as osp
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from kpt_plugin.inference.inputs import decode_image
from kpt_plugin.serving.schemas import INFER_ENDPOINT


@pytest.fixture(scope='module')
def real_pipeline(shared_dir):
    from kpt_plugin import create_pipeline
    return create_pipeline(
        'human_keypoint_detection', device='cpu',
        det_model_dir=osp.join(shared_dir, 'fixtures', 'picodet', 'picodet_s_320_lcnet_pedestrian_folded.pdparams'),
        kpt_model_dir=osp.join(shared_dir, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams'))


def _expected(pipeline, raw):
    (res, ) = pipeline.predict([decode_image(raw, 'x')], batch_size=1)
    return [dict(bbox=[float(v) for v in b['coordinate']], kpts=np.asarray(b['keypoints'], np.float64).tolist(),
                 detScore=float(b['det_score']), kptScore=float(b['kpt_score'])) for b in res['boxes']]


def test_http_result_equals_the_python_result(real_pipeline, shared_dir, helpers):
    from kpt_plugin.serving.app import create_app
    names = ['demo_2.jpg', 'demo_4.jpg', 'demo_7.jpg']
    raws = [open(osp.join(shared_dir, 'data', 'demo', n), 'rb').read() for n in names]
    expected = [_expected(real_pipeline, raw) for raw in raws]
    assert all(len(e) >= 1 for e in expected), 'the demo images show people'
    with helpers.running(create_app(real_pipeline, max_batch=4, max_wait_ms=100)) as base:
        r = httpx.post(base + INFER_ENDPOINT, json={'image': base64.b64encode(raws[0]).decode()}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body['errorCode'] == 0 and body['result']['persons'] == expected[0]  # exact: JSON floats round-trip
        drawn = cv2.imdecode(np.frombuffer(base64.b64decode(body['result']['image']), np.uint8), cv2.IMREAD_COLOR)
        assert drawn.shape == decode_image(raws[0], 'x').shape
        # concurrent requests share batches (different image sizes in one detector pass): same persons
        with ThreadPoolExecutor(3) as pool:
            rs = list(pool.map(lambda raw: httpx.post(base + INFER_ENDPOINT, timeout=120, json={
                'image': base64.b64encode(raw).decode(), 'visualize': False}), raws))
        for r, exp in zip(rs, expected):
            assert r.status_code == 200, r.text
            got = r.json()['result']['persons']
            assert len(got) == len(exp)
            for g, e in zip(got, exp):
                np.testing.assert_allclose(g['bbox'], e['bbox'], atol=1e-2)
                np.testing.assert_allclose(g['kpts'], e['kpts'], atol=1e-2)
                assert abs(g['detScore'] - e['detScore']) < 1e-4
