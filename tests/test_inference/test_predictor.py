"""``kpt_plugin.create_model`` on the COCO mini images: fields, inputs forms, ppdet parity, flip, saving."""
import functools
import http.server
import json
import os
import os.path as osp
import threading

import cv2
import numpy as np
import pytest

import kpt_plugin
from kpt_plugin.inference.result import KptResult

SIZES = {'128x96': 'PP-TinyPose_128x96', '256x192': 'PP-TinyPose_256x192'}


@pytest.fixture(scope='module')
def ckpts(shared_dir, tmp_path_factory):
    """The official enhance weights (from ../shared) converted once per module."""
    from weight_convert.convert import convert
    out = tmp_path_factory.mktemp('ckpt')
    paths = {}
    for size, name in SIZES.items():
        paths[size] = str(out / f'{size}.pth')
        convert(osp.join(shared_dir, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), paths[size], name)
    return paths


@pytest.fixture(scope='module')
def model(ckpts):
    return kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpts['128x96'], device='cpu')


@pytest.fixture(scope='module')
def data_dir(shared_dir):
    return osp.join(shared_dir, 'data', 'coco_val2017_mini')


def _images(data_dir):
    return sorted(osp.join(data_dir, f) for f in os.listdir(data_dir) if f.endswith('.jpg'))


def _gt_boxes(data_dir):
    """GT person boxes per file as ppdet's eval reads them (clipped, pixel-inclusive width), instance order."""
    with open(osp.join(data_dir, 'test_coco.json')) as f:
        coco = json.load(f)
    imgs = {i['id']: i for i in coco['images']}
    boxes = {}
    for a in coco['annotations']:
        if a['num_keypoints'] == 0:
            continue
        im = imgs[a['image_id']]
        x, y, w, h = a['bbox']
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(im['width'] - 1, x1 + max(0, w - 1)), min(im['height'] - 1, y1 + max(0, h - 1))
        boxes.setdefault(im['file_name'], []).append([x1, y1, x2, y2])
    return boxes


def test_result_fields_whole_image(model, data_dir):
    img = _images(data_dir)[0]
    results = list(model.predict(img))
    assert len(results) == 1
    res = results[0]
    assert isinstance(res, KptResult) and res.ok
    assert res['input_path'] == img
    assert len(res['kpts']) == 1
    person = res['kpts'][0]
    assert set(person) == {'keypoints', 'kpt_score'}
    kp = np.asarray(person['keypoints'])
    assert kp.shape == (17, 3)
    h, w = cv2.imread(img).shape[:2]
    assert (kp[:, 0] >= 0).all() and (kp[:, 0] < w).all() and (kp[:, 1] >= 0).all() and (kp[:, 1] < h).all()
    assert person['kpt_score'] == pytest.approx(kp[:, 2].mean(), abs=1e-6)
    assert res.json['res']['kpts'][0]['keypoints'] == person['keypoints']
    json.dumps(res.json)  # plain types only


@pytest.mark.parametrize('size,flip', [('128x96', False), ('128x96', True), ('256x192', False), ('256x192', True)])
def test_boxes_equal_ppdet_eval(ckpts, shared_dir, data_dir, size, flip):
    """Same GT boxes -> the same keypoints as PaddleDetection's own tools/eval.py (before rescoring/NMS)."""
    m = kpt_plugin.create_model(SIZES[size], model_dir=ckpts[size], device='cpu', flip=flip, geometry='ppdet')
    raw = np.load(osp.join(shared_dir, 'fixtures', 'enhance', 'results',
                           f'{size}_coco_{"flip" if flip else "noflip"}_raw.npz'))
    boxes = _gt_boxes(data_dir)
    files = sorted(boxes)
    results = list(m.predict([osp.join(data_dir, f) for f in files], bboxes=[boxes[f] for f in files],
                             batch_size=3))
    got = np.array([k['keypoints'] for r in results for k in r['kpts']])
    assert got.shape == raw['all_preds'].shape == (12, 17, 3)
    np.testing.assert_allclose(got[..., :2], raw['all_preds'][..., :2], rtol=0, atol=0.01)
    np.testing.assert_allclose(got[..., 2], raw['all_preds'][..., 2], rtol=0, atol=1e-4)
    assert all(set(k) == {'keypoints', 'kpt_score', 'bbox'} for r in results for k in r['kpts'])


def test_predict_matches_eval_transforms(model, data_dir):
    """The predict crop is the eval pipeline's (PPGetBBoxCenterScale + PPTopdownAffine) for the same box."""
    from mmcv.transforms import Compose
    from kpt_plugin.inference.preprocess import box_center_scale, crop
    from kpt_plugin.datasets.transforms.pp_topdown_transforms import PPGetBBoxCenterScale, PPTopdownAffine
    img = cv2.imread(_images(data_dir)[0])
    box = [280.79, 44.73, 498.49, 390.41]
    pipe = Compose([PPGetBBoxCenterScale(input_size=(96, 128)), PPTopdownAffine(input_size=(96, 128))])
    out = pipe(dict(img=img.copy(), bbox=np.array([box])))
    c, s = box_center_scale(box, (96, 128))
    np.testing.assert_array_equal(out['img'], crop(img, c, s, (96, 128)))
    np.testing.assert_array_equal(out['input_center'], c)
    np.testing.assert_array_equal(out['input_scale'], s * np.float32(200))


def test_input_forms_agree(model, data_dir, tmp_path):
    """ndarray, path, directory (sorted) and a mixed list give the same keypoints for the same image."""
    files = _images(data_dir)
    by_path = [r['kpts'][0]['keypoints'] for r in model.predict(files)]
    arr = cv2.imread(files[1])
    res_arr = next(model.predict(arr))
    assert res_arr['input_path'] is None
    np.testing.assert_allclose(res_arr['kpts'][0]['keypoints'], by_path[1], atol=1e-4)
    by_dir = list(model.predict(data_dir, batch_size=4))
    assert [r['input_path'] for r in by_dir] == files
    np.testing.assert_allclose([r['kpts'][0]['keypoints'] for r in by_dir], by_path, atol=1e-4)
    mixed = list(model.predict([files[2], arr, data_dir], batch_size=2))
    assert [r['input_path'] for r in mixed] == [files[2], None] + files
    np.testing.assert_allclose(mixed[0]['kpts'][0]['keypoints'], by_path[2], atol=1e-4)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


def test_url_input_from_local_server(model, data_dir):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             functools.partial(_QuietHandler, directory=data_dir))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        name = osp.basename(_images(data_dir)[0])
        url = f'http://127.0.0.1:{server.server_address[1]}/{name}'
        res = next(model.predict(url))
        missing = next(model.predict(url.replace(name, 'nope.jpg')))
    finally:
        server.shutdown()
        server.server_close()
    assert res.ok and res['input_path'] == url
    ref = next(model.predict(_images(data_dir)[0]))
    np.testing.assert_allclose(res['kpts'][0]['keypoints'], ref['kpts'][0]['keypoints'], atol=1e-4)
    assert not missing.ok and 'HTTP 404' in missing['error'] and 'nope.jpg' in missing['error']


def test_boxes_from_coco_detection_json(model, data_dir):
    det = osp.join(data_dir, 'test_coco_det_AP_H_56.json')
    with open(det) as f:
        dets = json.load(f)
    results = list(model.predict(data_dir, bboxes=det))
    for r in results:
        image_id = int(osp.splitext(osp.basename(r['input_path']))[0])
        mine = [d for d in dets if d['image_id'] == image_id and d.get('category_id', 1) == 1]
        assert len(r['kpts']) == len(mine)
        for k, d in zip(r['kpts'], mine):
            x, y, w, h = d['bbox']
            np.testing.assert_allclose(k['bbox'], [x, y, x + w, y + h])
            assert k['det_score'] == pytest.approx(d['score'])


def test_flip_changes_and_batch_size_does_not(ckpts, data_dir):
    m = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpts['128x96'], device='cpu', flip=True)
    files = _images(data_dir)
    b1 = [r['kpts'][0]['keypoints'] for r in m.predict(files, batch_size=1)]
    b4 = [r['kpts'][0]['keypoints'] for r in m.predict(files, batch_size=4)]
    np.testing.assert_allclose(b1, b4, atol=1e-3)


def test_bad_item_in_batch_does_not_stop_others(model, data_dir, tmp_path):
    files = _images(data_dir)
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    results = list(model.predict([files[0], str(bad), files[1], str(tmp_path / 'missing.png')], batch_size=4))
    assert [r.ok for r in results] == [True, False, True, False]
    assert str(bad) in results[1]['error'] and results[1]['kpts'] == []
    assert 'missing.png' in results[3]['error']
    assert len(results[2]['kpts']) == 1


def test_save_json_img_paddlex_names(model, data_dir, tmp_path):
    img = _images(data_dir)[0]
    res = next(model.predict(img))
    out_dir = tmp_path / 'out'
    j = res.save_to_json(str(out_dir))
    i = res.save_to_img(str(out_dir))
    stem = osp.splitext(osp.basename(img))[0]
    assert j == str(out_dir / f'{stem}_res.json') and i == str(out_dir / f'{stem}_res.jpg')
    with open(j) as f:
        assert json.load(f) == res.json['res']
    drawn = cv2.imread(i)
    assert drawn.shape == cv2.imread(img).shape
    assert np.abs(drawn.astype(int) - cv2.imread(img).astype(int)).sum() > 0  # something was drawn
    explicit = res.save_to_json(str(tmp_path / 'x' / 'r.json'))
    assert explicit.endswith('r.json') and osp.isfile(explicit)
    assert res.img['res'].size == (drawn.shape[1], drawn.shape[0])
    assert sorted(os.listdir(out_dir)) == sorted([osp.basename(j), osp.basename(i)])  # no temp files left


def test_print(model, data_dir, capsys):
    """PaddleX's documented calls: ``json_format`` (its code) and ``format_json`` (its docs table) both work."""
    res = next(model.predict(_images(data_dir)[0]))
    res.print(format_json=True, indent=2, ensure_ascii=False)
    assert json.loads(capsys.readouterr().out) == res.json
    res.print(json_format=False, indent=4, ensure_ascii=False)
    assert capsys.readouterr().out.strip() == str({'res': res.json['res']})
    res.print(json_format=True, indent=4, ensure_ascii=False)
    out = capsys.readouterr().out
    assert json.loads(out) == res.json and len(out.splitlines()) > 80  # PaddleX's layout: a row per value
    res.print()
    assert capsys.readouterr().out.startswith("{'res': {'input_path'")
    assert res.str == {'res': res.json['res']}


def test_outputs_written_atomically(model, data_dir, tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous file intact and no temp file behind."""
    res = next(model.predict(_images(data_dir)[0]))
    target = tmp_path / 'r.json'
    target.write_text('old')

    def boom(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError, match='disk full'):
        res.save_to_json(str(target))
    with pytest.raises(OSError, match='disk full'):
        res.save_to_img(str(tmp_path / 'r.png'))
    assert target.read_text() == 'old'
    assert sorted(os.listdir(tmp_path)) == ['r.json']


def test_rgba_and_gray_png_files_are_converted(model, data_dir, tmp_path):
    bgr = cv2.imread(_images(data_dir)[0])
    rgba = tmp_path / 'rgba.png'
    gray = tmp_path / 'gray.png'
    cv2.imwrite(str(rgba), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(gray), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    r_rgba, r_gray = model.predict([str(rgba), str(gray)])
    assert r_rgba.ok and r_gray.ok
    ref = next(model.predict(bgr))
    np.testing.assert_allclose(r_rgba['kpts'][0]['keypoints'], ref['kpts'][0]['keypoints'], atol=1e-4)
    assert len(r_gray['kpts']) == 1


def test_mmpose_native_init_model_inference_topdown(ckpts, data_dir):
    """MMPose's own API still works with our config + checkpoint (MMPose's geometry: close to ours)."""
    from mmpose.apis import inference_topdown, init_model
    from kpt_plugin.zoo import get_config_path
    pose = init_model(get_config_path('PP-TinyPose_128x96'), ckpts['128x96'], device='cpu')
    box = [280.79, 44.73, 498.49, 390.41]
    samples = inference_topdown(pose, _images(data_dir)[0], bboxes=np.array([box]))
    kp = samples[0].pred_instances.keypoints[0]
    # the config's test_cfg runs ppdet's flip test, as flip=True does here
    flip_model = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpts['128x96'], device='cpu', flip=True,
                                         geometry='ppdet')
    ours = np.asarray(next(flip_model.predict(_images(data_dir)[0], bboxes=[box]))['kpts'][0]['keypoints'])
    # same network and flip; MMPose's crop/back-projection differ from ppdet's by a fraction of a heatmap pixel
    assert np.abs(kp - ours[:, :2]).max() < 0.005 * (box[3] - box[1])
    np.testing.assert_allclose(samples[0].pred_instances.keypoint_scores[0], ours[:, 2], atol=0.02)


def test_mmpose_inferencer_with_our_config(ckpts, data_dir, tmp_path):
    """MMPoseInferencer(pose2d=config, pose2d_weights=checkpoint) runs (whole image as the person box).

    MMPose's inferencer reads the top-level ``data_mode`` and ``dataset_type`` of the config, as MMPose's own
    configs declare them.
    """
    from mmengine.config import Config
    from mmpose.apis import MMPoseInferencer
    from kpt_plugin.zoo import get_config_path
    cfg = Config.fromfile(get_config_path('PP-TinyPose_128x96'))
    assert cfg.get('data_mode') == 'topdown' and cfg.get('dataset_type'), \
        "the config must declare data_mode = 'topdown' and dataset_type at top level for MMPoseInferencer"
    inferencer = MMPoseInferencer(pose2d=get_config_path('PP-TinyPose_128x96'), pose2d_weights=ckpts['128x96'],
                                  det_model='whole_image', device='cpu')
    out = next(inferencer(_images(data_dir)[0], return_vis=False))
    persons = out['predictions'][0]
    assert len(persons) == 1 and np.asarray(persons[0]['keypoints']).shape == (17, 2)
    assert min(persons[0]['keypoint_scores']) >= 0


def test_batch_normalisation_table_equals_ppdet_order(data_dir):
    from kpt_plugin.inference.preprocess import crops_to_tensor, normalize
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (128, 96, 3), dtype=np.uint8) for _ in range(3)]
    crops.append(cv2.imread(_images(data_dir)[0])[:128, :96])
    np.testing.assert_array_equal(crops_to_tensor(crops), np.stack([normalize(c) for c in crops]))


def test_model_name_from_checkpoint_meta(ckpts):
    """``create_model(None, model_dir=our .pth)``: the input size comes from the checkpoint's recorded arch."""
    m = kpt_plugin.create_model(None, model_dir=ckpts['256x192'], device='cpu')
    assert m.input_size == (192, 256)
