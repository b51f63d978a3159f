"""Every bad input -> one clear error naming it; model-level mistakes fail at ``create_model``."""
import os.path as osp
import socket
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch

import kpt_plugin
from kpt_plugin.errors import DeviceError, InputError, WeightsError


@pytest.fixture(scope='module')
def ckpt(enhance_ckpt):
    return enhance_ckpt('128x96')


@pytest.fixture(scope='module')
def model(ckpt):
    return kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu')


@pytest.fixture(scope='module')
def image(shared_dir):
    return cv2.imread(osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000000785.jpg'))


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (tiny file; decoding it would need the full buffer)."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64))
                     + chunk(b'IEND', b''))
    return str(path)


def _closed_port_url():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused, immediately
    return f'http://127.0.0.1:{port}/person.jpg'


def _bad_cases(tmp_path, image):
    """(input, bboxes, expected substring naming the input, expected reason) for each bad input."""
    zero = tmp_path / 'zero.jpg'
    zero.write_bytes(b'')
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8\xff\xe0\x00\x10JFIF' + bytes(range(256)) * 4)
    text = tmp_path / 'notes.png'
    text.write_text('this is not an image')
    deep = tmp_path / 'deep16.png'
    cv2.imwrite(str(deep), (image.astype(np.uint16) * 257))
    empty_dir = tmp_path / 'empty_dir'
    empty_dir.mkdir()
    (empty_dir / 'readme.txt').write_text('no images here')
    huge = _png_header_only(tmp_path / 'huge.png', 40000, 40000)
    url = _closed_port_url()
    ok = image
    return [
        ('missing file', str(tmp_path / 'missing.jpg'), None, 'missing.jpg', 'no such file'),
        ('zero-byte file', str(zero), None, 'zero.jpg', 'empty (0 bytes)'),
        ('corrupt jpeg', str(corrupt), None, 'corrupt.jpg', 'not a readable image'),
        ('text file named .png', str(text), None, 'notes.png', 'not a readable image'),
        ('16-bit png', str(deep), None, 'deep16.png', '16-bit'),
        ('huge image', huge, None, 'huge.png', 'exceeds the limit'),
        ('empty directory', str(empty_dir), None, 'empty_dir', 'holds no images'),
        ('unreachable URL', url, None, url, 'cannot download'),
        ('RGBA array', cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), None, '<ndarray #0>', '4-channel'),
        ('grayscale array', cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None, '<ndarray #0>', 'grayscale'),
        ('float array', image.astype(np.float32), None, '<ndarray #0>', 'dtype float32'),
        ('uint16 array', image.astype(np.uint16), None, '<ndarray #0>', 'dtype uint16'),
        ('1x1 array', np.zeros((1, 1, 3), np.uint8), None, '<ndarray #0>', 'too small'),
        ('unsupported type', 12345, None, 'input #0', 'unsupported type int'),
        ('bbox x2 < x1', ok, [[100, 10, 50, 200]], '<ndarray #0>', 'x2 <= x1'),
        ('bbox of 3 numbers', ok, [[1, 2, 3]], '<ndarray #0>', 'shape (N, 4) or (N, 5)'),
        ('bbox with NaN', ok, [[0, 0, float('nan'), 10]], '<ndarray #0>', 'NaN'),
        ('bbox not numbers', ok, [['a', 'b', 'c', 'd']], '<ndarray #0>', 'must be numbers'),
    ]


def test_each_bad_input_raises_clear_error(model, tmp_path, image):
    cases = _bad_cases(tmp_path, image)
    assert len(cases) >= 15
    for label, inp, boxes, name, reason in cases:
        with pytest.raises(InputError) as info:
            list(model.predict(inp, bboxes=boxes, errors='raise'))
        msg = str(info.value)
        assert name in msg and reason in msg, f'{label}: {msg}'
        assert '\n' not in msg, f'{label}: one line expected: {msg}'


def test_bad_inputs_yield_error_results_in_a_batch(model, tmp_path, image):
    """All the bad inputs in one list, between good ones: each yields its error, the good ones still run."""
    cases = [c for c in _bad_cases(tmp_path, image) if c[2] is None]
    inputs = [image] + [c[1] for c in cases] + [image]
    results = list(model.predict(inputs, batch_size=4))
    # the empty directory yields one error result, like any other bad entry
    assert len(results) == len(inputs)
    assert results[0].ok and results[-1].ok
    for res, (label, _, _, name, reason) in zip(results[1:-1], cases):
        assert not res.ok and res['kpts'] == [], label
        name = name.replace('#0', f'#{results.index(res)}')
        assert name in res['error'] and reason in res['error'], f'{label}: {res["error"]}'
    np.testing.assert_allclose(results[0]['kpts'][0]['keypoints'], results[-1]['kpts'][0]['keypoints'])


def test_bboxes_count_mismatch(model, image):
    with pytest.raises(InputError, match='3 box lists for 2 images'):
        list(model.predict([image, image], bboxes=[[[0, 0, 10, 10]], [], []]))
    with pytest.raises(InputError, match='one box list was given for 2 images'):
        list(model.predict([image, image], bboxes=[[0, 0, 10, 10], [0, 0, 5, 5]]))


def test_bboxes_file_errors(model, image, tmp_path):
    bad = tmp_path / 'boxes.json'
    bad.write_text('{not json')
    with pytest.raises(InputError, match='boxes.json: not a valid json'):
        list(model.predict(image, bboxes=str(bad)))
    with pytest.raises(InputError, match='nothere.json: boxes file not found'):
        list(model.predict(image, bboxes=str(tmp_path / 'nothere.json')))


def test_empty_list_and_bad_arguments(model, image):
    with pytest.raises(InputError, match='empty list'):
        list(model.predict([]))
    with pytest.raises(ValueError, match='batch_size must be a positive integer'):
        list(model.predict(image, batch_size=0))
    with pytest.raises(ValueError, match="errors must be 'yield' or 'raise'"):
        list(model.predict(image, errors='ignore'))


def test_unknown_model_name():
    from kpt_plugin.zoo import ZooError
    with pytest.raises(ZooError, match="unknown model 'PP-TinyPose_999x1'.*PP-TinyPose_128x96"):
        kpt_plugin.create_model('PP-TinyPose_999x1')


def test_weights_not_a_checkpoint(tmp_path):
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'definitely not a torch file')
    with pytest.raises(WeightsError, match='junk.pth: not a readable PyTorch checkpoint'):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=str(junk))


def test_weights_of_another_model(tmp_path):
    other = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7)}}, str(other))
    with pytest.raises(WeightsError, match=r'resnet.pth: weights do not fit .*PP-TinyPose checkpoint'):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=str(other))


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=str(tmp_path / 'nope.pth'))


def test_bad_device_and_backend(ckpt):
    with pytest.raises(DeviceError, match="unknown device 'tpu:0'"):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='tpu:0')
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, backend='tensorrt')


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_bad_onnx_path(ckpt, tmp_path, backend):
    """A missing or corrupt exported model for the graph backends: one line naming the file."""
    from kpt_plugin.errors import BackendError
    with pytest.raises(BackendError, match=r'nope\.onnx: no such model file; write one with `kpt-plugin export`'):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu', backend=backend,
                                onnx_path=str(tmp_path / 'nope.onnx'))
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'\x00not a model' * 10)
    with pytest.raises(BackendError, match=rf'junk\.onnx: {backend} cannot load this model \(.+\); pass an ONNX'):
        kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu', backend=backend,
                                onnx_path=str(junk))
    if backend == 'openvino':
        for name, msg in [('junk.xml', 'not an OpenVINO IR: no <net> element'),
                          ('model.bin', 'expected an .onnx file or an OpenVINO IR .xml')]:
            (tmp_path / name).write_bytes(b'garbage')
            with pytest.raises(BackendError, match=rf'{name}: openvino cannot load this model \({msg}\)'):
                kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu', backend=backend,
                                        onnx_path=str(tmp_path / name))

