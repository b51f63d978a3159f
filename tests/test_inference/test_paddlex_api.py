"""PaddleX's documented keypoint-module calls run unchanged with ``from kpt_plugin import create_model``.

Each test is one of PaddleX's documented usages (module docs of ``PP-TinyPose_128x96``) or one of its argument
forms; the numbers themselves are checked against PaddleX's goldens in ``test_paddlex_module.py``.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from kpt_plugin import create_model
from kpt_plugin.errors import DeviceError, KptError


@pytest.fixture(scope='module')
def model_dir(shared_dir):
    return osp.join(shared_dir, 'weights', 'paddlex_inference_enhance', 'PP-TinyPose_128x96')


@pytest.fixture(scope='module')
def model(model_dir):
    return create_model('PP-TinyPose_128x96', model_dir=model_dir, device='cpu')


@pytest.fixture(scope='module')
def image(shared_dir):
    return osp.join(shared_dir, 'data', 'demo', 'demo_2.jpg')


def test_documented_snippet_runs_verbatim(model_dir, image, tmp_path, capsys):
    model = create_model(model_name='PP-TinyPose_128x96', model_dir=model_dir)
    output = model.predict(image, batch_size=1)
    for res in output:
        res.print()
        res.save_to_img(f'{tmp_path}/')
        res.save_to_json(f'{tmp_path}/')
    assert sorted(os.listdir(tmp_path)) == ['demo_2_res.jpg', 'demo_2_res.json']
    with open(tmp_path / 'demo_2_res.json') as f:
        data = json.load(f)
    assert set(data) == {'input_path', 'kpts'} and data['input_path'] == image
    assert set(data['kpts'][0]) == {'keypoints', 'kpt_score'} and np.asarray(data['kpts'][0]['keypoints']).shape == (
        17, 3)
    assert "'kpt_score'" in capsys.readouterr().out


def test_paddlex_constructor_arguments(model_dir, image):
    """``pp_option`` (its ``cpu_threads``), ``batch_size`` and ``use_udp`` are PaddleX's arguments, with its meaning."""

    class Option:
        cpu_threads = 1

    plain = create_model('PP-TinyPose_128x96', model_dir=model_dir, pp_option=Option(), batch_size=2)
    assert plain.batch_size == 2
    udp = create_model('PP-TinyPose_128x96', model_dir=model_dir, use_udp=True)
    a = np.asarray(next(plain.predict(image))['kpts'][0]['keypoints'])
    b = np.asarray(next(udp.predict(image))['kpts'][0]['keypoints'])
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert np.abs(a[:, :2] - b[:, :2]).max() > 0.1  # UDP is another crop geometry: the points must move


def test_print_and_str_forms(model, image, capsys):
    res = next(model.predict(image))
    res.print(json_format=False, indent=4, ensure_ascii=False)
    res.print(format_json=True, indent=2, ensure_ascii=False)
    out = capsys.readouterr().out
    assert out.count('kpt_score') == 2
    assert isinstance(res.str, dict) and 'res' in res.str


def test_ndarray_inputs_get_paddlex_file_names(model, image, tmp_path):
    arr = cv2.imread(image)
    for res in model.predict([arr, arr]):
        res.save_to_json(str(tmp_path))
        res.save_to_img(str(tmp_path))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 4, names
    for n in names:
        assert ' ' not in n and '#' not in n and n.endswith(('_res.json', '_res.png')), n


@pytest.mark.parametrize('device', ['xpu', 'gcu', 'dcu', 'mlu', 'gpu:0,1'])
def test_paddlex_device_strings_say_what_is_missing(model_dir, device):
    with pytest.raises(DeviceError, match=device.split(':')[0]):
        create_model('PP-TinyPose_128x96', model_dir=model_dir, device=device)


def test_paddlex_dir_of_another_model_is_refused(model_dir):
    with pytest.raises(KptError, match=r"PP-TinyPose_128x96 \(Global.model_name.*model asked for is "
                                       r"PP-TinyPose_256x192"):
        create_model('PP-TinyPose_256x192', model_dir=model_dir)


def test_exif_orientation_is_applied_as_cv2_imread_does(model, image, tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 reads upright (``cv2.imread(IMREAD_COLOR)``, PaddleX's read)."""
    from PIL import Image
    upright = cv2.imread(image)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # orientation 6 = rotate 90 deg clockwise to display
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / 'sideways.jpg')
    Image.fromarray(stored[:, :, ::-1]).save(path, quality=100, exif=exif)
    got = next(model.predict(path))
    assert got.ok, got.get('error')
    assert got.input_img.shape == upright.shape
    ref = next(model.predict(cv2.imread(path)))  # what cv2.imread itself shows
    np.testing.assert_allclose(got['kpts'][0]['keypoints'], ref['kpts'][0]['keypoints'], atol=1e-4)


def test_drawing_skips_joints_below_paddlex_threshold():
    from kpt_plugin.inference.draw import VISUAL_THRESH, draw_skeletons
    assert VISUAL_THRESH == 0.1
    img = np.zeros((200, 200, 3), np.uint8)
    person = np.zeros((17, 3), np.float32)
    person[:, :2] = 100
    person[0] = (30, 30, 0.09)   # below the threshold: nothing may be drawn there
    person[1] = (170, 170, 0.5)  # above: drawn
    out = draw_skeletons(img, [person])
    assert out[25:36, 25:36].max() == 0
    assert out[165:176, 165:176].max() > 0
