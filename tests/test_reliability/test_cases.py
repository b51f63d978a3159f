"""Reliability (issue 15): one row per fault-injection case, over every entry point.

Each row provokes one fault the way a user meets it (a CLI command run in-process, or the Python API) and states the
outcome: the exit code (``kpt-plugin``: 0 ok, 1 some input failed, 2 user error) or what the API does, and the
fragments the message must contain: the input's name AND what to do. ``check`` rows also assert what was (not)
written. ``docs/reliability.md`` maps each class of the issue to these rows.
"""
import dataclasses
import errno
import http.server
import importlib.util
import json
import os
import os.path as osp
import signal
import stat
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional, Tuple

import cv2
import numpy as np
import pytest

import kpt_plugin
from kpt_plugin_cli import main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MINI = ('data', 'coco_val2017_mini')
MODEL = ['--model', 'PP-TinyPose_128x96', '--device', 'cpu']


def _load(name, *path):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, *path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


coco_cases = _load('kpt_coco_cases', 'tests', 'test_datasets', 'coco_cases.py')


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def ckpt(enhance_ckpt):
    return enhance_ckpt('128x96')


@pytest.fixture(scope='module')
def tiny_jpg(shared_dir):
    """A 40x32 JPEG (about 1 KB): every good input of the table."""
    img = cv2.imread(osp.join(shared_dir, *MINI, '000000000785.jpg'))
    return cv2.imencode('.jpg', cv2.resize(img, (40, 32)))[1].tobytes()


class _Server(http.server.BaseHTTPRequestHandler):
    """``/good.jpg``; ``/cut.jpg`` (Content-Length 5000, closes after 100 bytes); ``/slow.jpg`` (a byte per 0.2 s);
    ``/big.jpg`` (5000 bytes, no length given)."""
    body = b''

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        try:
            self._reply()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (deadline, byte cap): expected

    def _reply(self):
        self.send_response(200)
        self.send_header('Content-Type', 'image/jpeg')
        if self.path == '/cut.jpg':
            self.send_header('Content-Length', '5000')
            self.end_headers()
            self.wfile.write(self.body[:100])
        elif self.path == '/slow.jpg':
            self.end_headers()
            for b in self.body[:40]:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path == '/big.jpg':
            self.end_headers()
            self.wfile.write(b'\xff' * 5000)
        else:
            self.send_header('Content-Length', str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        self.close_connection = True


@pytest.fixture(scope='module')
def server(tiny_jpg):
    handler = type('Handler', (_Server, ), dict(body=tiny_jpg))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()


@pytest.fixture(scope='module')
def model_cache():
    return {}


@pytest.fixture(autouse=True)
def reuse_models(monkeypatch, model_cache):
    """The CLI builds its model through ``create_model``; build each kind once per module (the faults are about
    inputs and outputs, not loading; a failing load is not cached, so load errors still happen)."""
    from kpt_plugin.inference import predictor
    real = predictor.create_model

    def cached(*args, **kwargs):
        key = repr((args, sorted(kwargs.items())))
        if key not in model_cache:
            model_cache[key] = real(*args, **kwargs)
        model = model_cache[key]
        model.reset_timings()
        return model

    monkeypatch.setattr(predictor, 'create_model', cached)


@dataclasses.dataclass
class Ctx:
    """What a row's functions get: the folder, the weights, a good image maker, the server, monkeypatch."""
    tmp: str
    ckpt: str
    shared: str
    url: str
    jpg: bytes
    monkeypatch: Any
    out: str = ''

    def image(self, rel, data=None):
        path = osp.join(self.tmp, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(self.jpg if data is None else data)
        return path

    def predict(self, *inputs, opts=()):
        self.out = osp.join(self.tmp, 'out')
        return ['predict', *inputs, '--weights', self.ckpt, *MODEL, '--save-dir', self.out, '--quiet', *opts]

    def boxes(self, data, name='dets.json'):
        path = osp.join(self.tmp, name)
        with open(path, 'w') as f:
            json.dump(data, f)
        return path

    def written(self):
        return sorted(os.listdir(self.out)) if osp.isdir(self.out) else []


@dataclasses.dataclass
class Case:
    """One row. ``provoke(ctx)`` returns CLI argv (run in-process) or ``(outcome, message)`` from the API;
    ``expect`` is the exit code or the API outcome; ``says`` the fragments (``{t}`` = the case's folder)."""
    id: str
    klass: str
    provoke: Callable[[Ctx], Any]
    expect: Any
    says: Tuple[str, ...]
    check: Optional[Callable[[Ctx], None]] = None


def _png_header(width, height):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def _json_of(ctx, name):
    with open(osp.join(ctx.out, name), 'rb') as f:
        return json.loads(f.read().decode('utf-8'))


def _only_good_written(ctx):
    assert ctx.written() == ['good_res.jpg', 'good_res.json'], ctx.written()


def _det(image_id, bbox=(2, 2, 30, 24), score=0.9):
    return dict(image_id=image_id, bbox=list(bbox), score=score, category_id=1)


def _three(ctx, dets):
    imgs = [ctx.image(f'{i}.jpg') for i in (1, 2, 3)]
    return ctx.predict(*imgs, opts=['--bboxes', ctx.boxes(dets), '--no-img'])


def _written_13(ctx):
    assert ctx.written() == ['1_res.json', '3_res.json'], ctx.written()


def _env(ctx, **values):
    for k, v in values.items():
        ctx.monkeypatch.setenv(k, v)


# ---- outputs
def _collide(ctx):
    return ctx.predict(ctx.image('d1/p.jpg'), ctx.image('d1/p.png', cv2.imencode('.png', cv2.imdecode(
        np.frombuffer(ctx.jpg, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()), ctx.image('d2/p.jpg'))


def _collide_check(ctx):
    assert ctx.written() == ['p_res.jpg', 'p_res.json']
    assert _json_of(ctx, 'p_res.json')['input_path'] == osp.join(ctx.tmp, 'd1/p.jpg')


def _earlier(ctx, owner, rel='d2/p.jpg', opts=()):
    os.makedirs(osp.join(ctx.tmp, 'out'))
    with open(osp.join(ctx.tmp, 'out', 'p_res.json'), 'w') as f:
        json.dump(dict(input_path=osp.join(ctx.tmp, owner), kpts=[]), f)
    return ctx.predict(ctx.image(rel), opts=opts)


def _kept_earlier(ctx):
    assert _json_of(ctx, 'p_res.json') == dict(input_path=osp.join(ctx.tmp, 'd1/p.jpg'), kpts=[])
    assert ctx.written() == ['p_res.json']  # nothing of the refused input either


def _replaced(ctx):
    assert len(_json_of(ctx, 'p_res.json')['kpts']) == 1 and ctx.written() == ['p_res.jpg', 'p_res.json']


def _disk_full_on_json(ctx):
    from kpt_plugin.inference.result import KptResult

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, 'No space left on device')
    ctx.monkeypatch.setattr(KptResult, 'save_to_json', full)
    return ctx.predict(ctx.image('p.jpg'))


def _nothing_written(ctx):
    assert ctx.written() == [], ctx.written()


def _stale_parts(ctx):
    out = osp.join(ctx.tmp, 'out')
    os.makedirs(out)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    for pid, name in ((dead.pid, 'dead'), (os.getpid(), 'live')):
        path = osp.join(out, f'.p_res.json.{pid}.0123abcd.part')
        with open(path, 'w') as f:
            f.write(name)
        os.utime(path, (time.time() - 3600, ) * 2)
    return ctx.predict(ctx.image('p.jpg'))


def _stale_removed(ctx):
    assert ctx.written() == [f'.p_res.json.{os.getpid()}.0123abcd.part', 'p_res.jpg', 'p_res.json']


def _nonfinite_output(ctx):
    model = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ctx.ckpt, device='cpu')
    ctx.monkeypatch.setattr(model, 'heatmaps', lambda batch: np.full((len(batch), 17, 32, 24), np.nan, np.float32))
    res = list(model.predict(ctx.image('p.jpg')))[0]
    return ('error result' if not res.ok and res['kpts'] == [] else 'ok'), res.get('error', '')


def _strict_json(ctx):
    from weight_convert.io import atomic_write_json
    path = osp.join(ctx.tmp, 'metrics.json')
    try:
        atomic_write_json(path, dict(ap=float('nan')))
    except ValueError as e:
        return ('raised' if not osp.exists(path) and not os.listdir(ctx.tmp) else 'left a file'), str(e)
    return 'wrote NaN', ''


def _strict_result_json(ctx):
    from kpt_plugin.inference.result import KptResult
    res = KptResult(dict(input_path='p.jpg', kpts=[dict(keypoints=[[0, 0, float('inf')]] * 17, kpt_score=1.0)]))
    try:
        res.save_to_json(ctx.tmp)
    except ValueError as e:
        return ('raised' if not os.listdir(ctx.tmp) else 'left a file'), str(e)
    return 'wrote inf', ''


def _nan_weights(ctx):
    import torch
    ck = torch.load(ctx.ckpt, weights_only=False)
    key = next(k for k, v in ck['state_dict'].items() if v.dtype == torch.float32 and v.numel() > 8)
    ck['state_dict'][key] = ck['state_dict'][key].clone().fill_(float('nan'))
    torch.save(ck, osp.join(ctx.tmp, 'nan.pth'))
    return osp.join(ctx.tmp, 'nan.pth')


def _weird_name(ctx, data=None):
    return ctx.predict(ctx.image(os.fsdecode(b'\xffname.jpg'), data))


def _weird_name_written(ctx):
    res = _json_of(ctx, os.fsdecode(b'\xffname_res.json'))
    assert os.fsencode(res['input_path']) == os.fsencode(ctx.tmp) + b'/\xffname.jpg' and len(res['kpts']) == 1


def _corrupt_cache(ctx):
    from kpt_plugin.zoo import resolve_checkpoint
    src = osp.join(ctx.shared, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams')
    ctx.monkeypatch.setenv('KPT_PLUGIN_HOME', osp.join(ctx.tmp, 'home'))
    _, cached = resolve_checkpoint(name='PP-TinyPose_128x96', weights=src)
    with open(cached, 'r+b') as f:
        f.truncate(1000)  # a kill -9 in the middle of writing it
    import logging
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger('kpt_plugin').addHandler(handler)
    try:
        _, again = resolve_checkpoint(name='PP-TinyPose_128x96', weights=src)
    finally:
        logging.getLogger('kpt_plugin').removeHandler(handler)
    ok = again == cached and osp.getsize(cached) > 100000
    return ('rebuilt' if ok else 'broken'), ' '.join(r.getMessage() for r in records)


# ---- training-free tools/test.py data checks (the one validator)
def _tools_test(name):
    def provoke(ctx):
        script = _load('kpt_test_script', 'tools', 'test.py')
        from kpt_plugin.zoo import get_config_path
        path = coco_cases.write_case(ctx.shared, name, osp.join(ctx.tmp, 'a.json'))
        with open(osp.join(ctx.tmp, 'never_loaded.pth'), 'wb'):
            pass
        rc = script.main([get_config_path('PP-TinyPose_128x96'), osp.join(ctx.tmp, 'never_loaded.pth'),
                          '--work-dir', ctx.tmp, '--cfg-options', f'test_dataloader.dataset.data_root={ctx.tmp}',
                          'test_dataloader.dataset.ann_file=a.json', 'test_dataloader.dataset.data_prefix.img=',
                          f'test_evaluator.ann_file={path}'])
        return rc, None
    return provoke


def _check_dataset(mutate):
    def provoke(ctx):
        with open(osp.join(ctx.shared, *MINI, 'test_coco.json')) as f:
            data = json.load(f)
        for img in data['images']:
            os.symlink(osp.join(ctx.shared, *MINI, img['file_name']), osp.join(ctx.tmp, img['file_name']))
        mutate(data)
        with open(osp.join(ctx.tmp, 'a.json'), 'w') as f:
            json.dump(data, f)
        return ['check-dataset', osp.join(ctx.tmp, 'a.json'), '--out', osp.join(ctx.tmp, 'o'), '--samples', '0']
    return provoke


def _ncnn(param, with_bin=True):
    def provoke(ctx):
        with open(osp.join(ctx.tmp, 'g.param'), 'wb') as f:
            f.write(param)
        if with_bin:
            with open(osp.join(ctx.tmp, 'g.bin'), 'wb') as f:
                f.write(b'\0' * 64)
        return ['convert', osp.join(ctx.tmp, 'g.param'), '-o', osp.join(ctx.tmp, 'g.pth')]
    return provoke


def _convert_full_disk(ctx):
    import torch

    def full(*a, **k):
        raise OSError(errno.ENOSPC, 'No space left on device')
    ctx.monkeypatch.setattr(torch, 'save', full)
    return ['convert', osp.join(ctx.shared, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams'), '-o',
            osp.join(ctx.tmp, 'm.pth')]


def _export_full_disk(ctx):
    import torch

    def full(*a, **k):
        raise OSError(errno.ENOSPC, 'No space left on device')
    ctx.monkeypatch.setattr(torch.onnx, 'export', full)
    return ['export', '--weights', ctx.ckpt, '--model', 'PP-TinyPose_128x96', '-o', osp.join(ctx.tmp, 'm.onnx')]


def _no_outputs_at_all(ctx):
    assert [f for f in os.listdir(ctx.tmp) if f.endswith(('.pth', '.onnx', '.part')) and f != 'nan.pth'] == []


def _read_only(ctx, folder):
    """Make ``folder`` refuse new files as a read-only mount would (the suite may run as root, which chmod does not
    stop)."""
    real = os.open
    folder = osp.abspath(folder)

    def ro_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and osp.dirname(osp.abspath(os.fsdecode(path))) == folder:
            raise OSError(errno.EROFS, 'Read-only file system', path)
        return real(path, flags, *args, **kwargs)
    os.makedirs(folder, exist_ok=True)
    ctx.monkeypatch.setattr(os, 'open', ro_open)
    return folder


def _a_file(ctx, name='afile'):
    with open(osp.join(ctx.tmp, name), 'w') as f:
        f.write('x')
    return osp.join(ctx.tmp, name)


CASES = [
    # ---- bad 1-3: downloads and files
    Case('url-incomplete-read', 'bad input: URL', lambda c: c.predict(f'{c.url}/cut.jpg', c.image('good.jpg')), 1,
         ('/cut.jpg', 'closed the connection after 100 bytes', 'check the URL'), _only_good_written),
    Case('url-slow-total-deadline', 'bad input: URL', lambda c: _env(c, KPT_PLUGIN_URL_TIMEOUT='1') or c.predict(
        f'{c.url}/slow.jpg', c.image('good.jpg')), 1,
        ('/slow.jpg', 'did not finish within 1 s', 'KPT_PLUGIN_URL_TIMEOUT', 'download the image'),
        _only_good_written),
    Case('url-body-over-byte-cap', 'bad input: URL', lambda c: _env(c, KPT_PLUGIN_MAX_BYTES='3000') or c.predict(
        f'{c.url}/big.jpg', c.image('good.jpg')), 1,
        ('/big.jpg', 'exceeds the limit of 3000 bytes', 'raise the limit'), _only_good_written),
    Case('url-scheme-ftp', 'bad input: URL', lambda c: c.predict('ftp://host/p.jpg', c.image('good.jpg')), 1,
         ('ftp://host/p.jpg', 'scheme is not supported', 'give an http(s) URL'), _only_good_written),
    Case('url-scheme-file', 'bad input: URL', lambda c: c.predict('file:///etc/p.jpg', c.image('good.jpg')), 1,
         ('file:///etc/p.jpg', 'scheme is not supported', 'local file path'), _only_good_written),
    Case('file-over-byte-cap', 'bad input: file', lambda c: _env(c, KPT_PLUGIN_MAX_BYTES='3000') or c.predict(
        c.image('big.jpg', b'\xff\xd8' + b'\0' * 5000), c.image('good.jpg')), 1,
        ('{t}/big.jpg', '5002 bytes exceed the limit of 3000', 'raise the limit'), _only_good_written),
    Case('file-garbage-bytes', 'bad input: file', lambda c: c.predict(c.image('junk.jpg', os.urandom(3000)),
                                                                       c.image('good.jpg')), 1,
         ('{t}/junk.jpg', 'not a readable image', 're-save the file'), _only_good_written),
    Case('file-truncated-jpeg', 'bad input: file', lambda c: c.predict(c.image('cut.jpg', c.jpg[:len(c.jpg) // 2]),
                                                                        c.image('good.jpg')), 1,
         ('{t}/cut.jpg', 'not a readable image', 're-save the file'), _only_good_written),
    Case('file-huge-dims-header', 'bad input: file', lambda c: c.predict(c.image('huge.png', _png_header(
        60000, 60000)), c.image('good.jpg')), 1, ('{t}/huge.png', 'exceeds the limit', 'resize it first'),
        _only_good_written),
    Case('file-missing', 'bad input: file', lambda c: c.predict(osp.join(c.tmp, 'nope.jpg'), c.image('good.jpg')),
         1, ('{t}/nope.jpg', 'no such file', 'check the path'), _only_good_written),
    Case('file-name-byte-0xff', 'bad input: file', _weird_name, 0, ('done: 1 image(s)', 'failed: 0'),
         _weird_name_written),
    Case('file-name-byte-0xff-failing', 'bad input: file', lambda c: _weird_name(c, b'junk'), 1,
         ('\\xffname.jpg', 'not a readable image', 're-save the file'), _nothing_written),
    Case('env-max-pixels-abc', 'bad input: environment', lambda c: _env(c, KPT_PLUGIN_MAX_PIXELS='abc') or c.predict(
        c.image('good.jpg')), 2, ('KPT_PLUGIN_MAX_PIXELS', "'abc'", 'unset it or give e.g.'), _nothing_written),
    # ---- bad 4: output names
    Case('output-name-collision', 'outputs: names', _collide, 1,
         ('{t}/d1/p.png: output', '{t}/d2/p.jpg: output', 'would overwrite the result of {t}/d1/p.jpg',
          'give the inputs distinct names'), _collide_check),
    Case('output-of-another-input-from-earlier-run', 'outputs: names', lambda c: _earlier(c, 'd1/p.jpg'), 1,
         ('{t}/d2/p.jpg: output {t}/out/p_res.json already exists (the result of {t}/d1/p.jpg)',
          'pass --overwrite to replace it'), _kept_earlier),
    Case('output-rerun-replaces-its-own', 'outputs: names', lambda c: _earlier(c, 'd2/p.jpg'), 0,
         ('done: 1 image(s), 1 person(s)', 'failed: 0'), _replaced),
    Case('output-overwrite-flag', 'outputs: names', lambda c: _earlier(c, 'd1/p.jpg', opts=['--overwrite']), 0,
         ('done: 1 image(s), 1 person(s)', 'failed: 0'), _replaced),
    # ---- bad 5-6: weights and non-finite numbers
    Case('weights-arch-contradicts-model', 'bad weights', lambda c: ['predict', c.image('p.jpg'), '--weights', c.ckpt,
                                                                     '--model', 'PP-TinyPose_256x192', '--save-dir',
                                                                     osp.join(c.tmp, 'out')], 2,
         ('pp_tinypose_128x96 but the model is PP-TinyPose_256x192', 'pass the matching model name')),
    Case('weights-nan-predict', 'bad weights', lambda c: c.predict(c.image('p.jpg'))[:2] + [
        '--weights', _nan_weights(c), '--save-dir', osp.join(c.tmp, 'out')], 2,
        ('{t}/nan.pth', 'NaN or inf', 'convert the original weights again')),
    Case('weights-nan-convert', 'bad weights', lambda c: ['convert', _nan_weights(c), '-o', osp.join(c.tmp, 'o.pth')],
         2, ('{t}/nan.pth', 'non-finite values', 'use another copy'), _no_outputs_at_all),
    Case('nonfinite-network-output', 'non-finite outputs', _nonfinite_output, 'error result',
         ('{t}/p.jpg', 'NaN or inf outputs', 'convert the original weights again')),
    Case('strict-json-helper', 'non-finite outputs', _strict_json, 'raised',
         ('{t}/metrics.json', 'Out of range float', 'nothing was written')),
    Case('strict-json-result', 'non-finite outputs', _strict_result_json, 'raised',
         ('{t}/p_res.json', 'NaN or infinity', 'nothing was written', 'report it')),
    # ---- bad 7: cache
    Case('corrupt-cached-checkpoint', 'cache', _corrupt_cache, 'rebuilt',
         ('{t}/home', 'failed verification', 'rebuilding it')),
    # ---- bad 8: tools/test.py, one validator
    *[Case(f'tools-test-{name.replace(" ", "-")}', 'tools/test.py data', _tools_test(name), 2,
           ('error: ann_file {t}/a.json', *coco_cases.CASES[name][1]))
      for name in ('duplicate annotation id', 'duplicate image id', 'string keypoints',
                   'annotation of an unlisted image')],
    # ---- weak: write failures, checked before the heavy work
    Case('save-dir-is-a-file', 'outputs: write failures', lambda c: ['predict', c.image('p.jpg'), '--weights',
                                                                     osp.join(c.tmp, 'never.pth'), '--save-dir',
                                                                     _a_file(c)], 2,
         ('--save-dir {t}/afile: is a file, not a folder', 'choose a folder')),
    Case('save-dir-under-a-file', 'outputs: write failures', lambda c: ['predict', c.image('p.jpg'), '--weights',
                                                                        osp.join(c.tmp, 'never.pth'), '--save-dir',
                                                                        osp.join(_a_file(c), 'sub')], 2,
         ('--save-dir {t}/afile/sub: cannot write there', 'choose a writable folder')),
    Case('save-dir-read-only', 'outputs: write failures', lambda c: [
        'predict', c.image('p.jpg'), '--weights', osp.join(c.tmp, 'never.pth'), '--save-dir',
        _read_only(c, osp.join(c.tmp, 'ro'))], 2,
        ('--save-dir {t}/ro: cannot write there (Read-only file system)', 'choose a writable folder')),
    Case('convert-out-read-only', 'outputs: write failures', lambda c: [
        'convert', osp.join(c.tmp, 'never.pdparams'), '-o', osp.join(_read_only(c, osp.join(c.tmp, 'ro')), 'm.pth')],
        2, ('-o {t}/ro/m.pth: the folder {t}/ro: cannot write there (Read-only file system)',
            'choose a writable folder')),
    Case('disk-full-writing-json', 'outputs: write failures', _disk_full_on_json, 1,
         ('{t}/p.jpg: cannot write output {t}/out/p_res.json', 'No space left', 'free disk space'),
         _nothing_written),
    Case('convert-out-under-a-file', 'outputs: write failures', lambda c: [
        'convert', osp.join(c.tmp, 'never.pdparams'), '-o', osp.join(_a_file(c), 'm.pth')], 2,
        ('-o {t}/afile/m.pth: the folder {t}/afile: is a file', 'choose a folder')),
    Case('convert-disk-full', 'outputs: write failures', _convert_full_disk, 2,
         ('-o {t}/m.pth: cannot write the output', 'No space left', 'free disk space'), _no_outputs_at_all),
    Case('export-out-under-a-file', 'outputs: write failures', lambda c: [
        'export', '--weights', osp.join(c.tmp, 'never.pth'), '-o', osp.join(_a_file(c), 'm.onnx')], 2,
        ('-o {t}/afile/m.onnx: the folder {t}/afile: is a file', 'choose a folder')),
    Case('export-disk-full', 'outputs: write failures', _export_full_disk, 2,
         ('{t}/m.onnx: cannot write the model', 'free disk space'), _no_outputs_at_all),
    # ---- weak: interrupted writes
    Case('stale-part-files-of-killed-run', 'outputs: interrupted writes', _stale_parts, 0,
         ('done: 1 image(s)', 'failed: 0'), _stale_removed),
    # ---- weak: box inputs
    Case('boxes-bad-entry-fails-its-image', 'box inputs', lambda c: _three(c, [_det(1), _det(2, (1, 2)), _det(3)]),
         1, ('{t}/2.jpg: {t}/dets.json entry #1', '"bbox" must be [x, y, w, h]'), _written_13),
    Case('boxes-entry-of-no-image', 'box inputs', lambda c: _three(c, [_det(1), 'junk', _det(2), _det(3)]), 1,
         ('{t}/dets.json entry #1: not a COCO detection', 'fix or remove it'),
         lambda c: c.written() == ['1_res.json', '2_res.json', '3_res.json']),
    Case('boxes-string-image-id', 'box inputs', lambda c: _three(c, [_det(1), _det('abc'), _det(3)]), 0,
         ('{t}/dets.json: 1 input(s) have no boxes there and get 0 persons (e.g. {t}/2.jpg)',
          "1 key(s) match no input (e.g. 'abc')", 'check that the boxes belong to these images')),
    Case('boxes-digit-string-image-id', 'box inputs', lambda c: _three(c, [_det('1'), _det('2'), _det('3')]),
         0, ('done: 3 image(s), 3 person(s)', 'failed: 0')),
    Case('boxes-match-no-input', 'box inputs', lambda c: _three(c, [_det(7), _det(8)]), 2,
         ('{t}/dets.json: none of the 2 keys', 'give the boxes of these images'), _nothing_written),
    Case('boxes-far-outside-image', 'box inputs', lambda c: _three(c, [_det(1), _det(2, (900, 900, 50, 50)),
                                                                       _det(3)]), 1,
         ('{t}/2.jpg: box #0', 'lies outside the 40x32 image', 'pixels of this image'), _written_13),
    Case('boxes-score-above-1', 'box inputs', lambda c: _three(c, [_det(1), _det(2, score=7), _det(3)]), 1,
         ('{t}/2.jpg: {t}/dets.json (image_id 2): box #0 has score 7', 'give scores in [0, 1]'), _written_13),
    Case('boxes-mapping-bad-entry', 'box inputs', lambda c: _three(c, {'1.jpg': [[1, 1, 30, 30]], '2.jpg': [[1, 2]],
                                                                       '3.jpg': [[1, 1, 30, 30, 0.5]]}), 1,
         ('{t}/2.jpg: {t}/dets.json (2.jpg)', 'shape (N, 4) or (N, 5)'), _written_13),
    Case('boxes-annotation-file-junk-entry', 'box inputs', lambda c: _three(c, dict(
        images=[dict(id=i, file_name=f'{i}.jpg') for i in (1, 2, 3)],
        annotations=['junk'] + [dict(image_id=i, bbox=[2, 2, 30, 24]) for i in (1, 2, 3)])), 1,
        ('{t}/dets.json annotations[0]: not a COCO annotation', 'fix or remove it'),
        lambda c: c.written() == ['1_res.json', '2_res.json', '3_res.json']),
    Case('bbox-thr-out-of-range', 'box inputs', lambda c: c.predict(c.image('p.jpg'), opts=['--bbox-thr', '5']), 2,
         ('--bbox-thr must be in [0, 1], got 5.0', )),
    # ---- weak: the rest
    Case('ncnn-param-garbage-line', 'bad weights', _ncnn(b'7767517\n3 3\nInput data 0 1 data\n'
                                                         b'Convolution c 1 1 data x 0=abc\n'), 2,
         ('{t}/g.param: line 4 is not an ncnn layer', 'export or copy it again')),
    Case('ncnn-param-binary', 'bad weights', _ncnn(b'\xff\xfe\x00\x01garbage'), 2,
         ('{t}/g.param: not an ncnn .param file', 'give the .param of an ncnn export')),
    Case('export-opset-5', 'bad option', lambda c: ['export', '--weights', c.ckpt, '-o', osp.join(c.tmp, 'm.onnx'),
                                                    '--opset', '5'], 2, ('--opset 5', 'choose 13 to 20')),
    Case('check-dataset-no-labelled-keypoint', 'datasets', _check_dataset(
        lambda d: [a.update(keypoints=[1, 1, 0] * 17, num_keypoints=0) for a in d['annotations']]), 1,
        ('{t}/a.json: no usable instance', 'label the keypoints')),
    Case('check-dataset-only-crowd', 'datasets', _check_dataset(
        lambda d: [a.update(iscrowd=1) for a in d['annotations']]), 1,
        ('{t}/a.json: no usable person annotation at all', 'add non-crowd person annotations')),
]


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_case(case, ckpt, shared_dir, server, tiny_jpg, tmp_path, monkeypatch, capsys, caplog):
    ctx = Ctx(str(tmp_path), ckpt, shared_dir, server, tiny_jpg, monkeypatch)
    got = case.provoke(ctx)
    if isinstance(got, list):
        rc = main(got)
        out, err = capsys.readouterr()
        text = out + err + caplog.text  # kpt_plugin's warnings reach stderr; pytest routes them to caplog
        assert rc == case.expect, text
        if rc == 2:  # a user error is one line
            assert err.count('\n') == 1 and err.startswith(f'kpt-plugin {got[0]}: error: '), err
        assert 'Traceback' not in text
    else:
        outcome, text = got
        if text is None:  # tools/test.py: rc, message on stderr
            out, err = capsys.readouterr()
            text = out + err
            assert out == '' and err.count('\n') == 1, text
        assert outcome == case.expect, text
    for fragment in case.says:
        assert fragment.format(t=tmp_path) in text, (fragment, text)
    if case.check is not None:
        assert case.check(ctx) is not False


def test_every_class_of_the_issue_has_rows():
    classes = {c.klass for c in CASES}
    assert {'bad input: URL', 'bad input: file', 'outputs: names', 'bad weights', 'non-finite outputs', 'cache',
            'tools/test.py data', 'outputs: write failures', 'outputs: interrupted writes', 'box inputs',
            'datasets', 'bad option', 'bad input: environment'} <= classes
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------- what a table row cannot show
def test_kill9_mid_write_leaves_a_part_file_that_a_later_run_removes(tmp_path):
    """A writer killed inside :func:`atomic_output` leaves ``.NAME.PID.RANDOM.part``; the first write of a later
    process into that folder removes it (once it is older than ``STALE_PART_S``), never the target."""
    from weight_convert import io
    target = tmp_path / 'm.pth'
    target.write_bytes(b'old')
    code = ('import sys, time; sys.path.insert(0, sys.argv[1]); from weight_convert.io import atomic_output\n'
            'with atomic_output(sys.argv[2]) as tmp:\n'
            '    open(tmp, "wb").write(b"half"); print(tmp, flush=True); time.sleep(60)\n')
    proc = subprocess.Popen([sys.executable, '-c', code, REPO, str(target)], stdout=subprocess.PIPE, text=True)
    part = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert osp.isfile(part) and target.read_bytes() == b'old'
    assert io.clean_stale_parts(str(tmp_path)) == []  # young: its writer could be on another host
    os.utime(part, (time.time() - io.STALE_PART_S - 1, ) * 2)
    io._swept.discard(str(tmp_path))
    io.atomic_write_bytes(str(tmp_path / 'other.json'), b'{}')
    assert not osp.exists(part) and target.read_bytes() == b'old'


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_outputs_and_temp_files_honour_the_umask(umask, tmp_path):
    from weight_convert.io import atomic_output, atomic_write_bytes
    old = os.umask(umask)
    try:
        with atomic_output(str(tmp_path / 'a.json')) as tmp:
            temp_mode = stat.S_IMODE(os.stat(tmp).st_mode)
            with open(tmp, 'wb') as f:
                f.write(b'{}')
        atomic_write_bytes(str(tmp_path / 'b.json'), b'{}')
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    assert temp_mode == want
    assert {stat.S_IMODE(os.stat(tmp_path / n).st_mode) for n in ('a.json', 'b.json')} == {want}


def test_1000_boxes_run_in_bounded_chunks(ckpt, tiny_jpg, monkeypatch):
    """1000 boxes on one image: the network never sees more than MAX_CROPS crops at once (memory is bounded;
    ``benchmarks/bench_reliability.py`` measures the RSS)."""
    model = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=ckpt, device='cpu')
    sizes = []
    h, w = model.input_size[1] // 4, model.input_size[0] // 4
    # the network's numbers do not matter here, only how many crops it is given at once
    monkeypatch.setattr(model, 'heatmaps', lambda batch: sizes.append(len(batch)) or np.zeros(
        (len(batch), 17, h, w), np.float32))
    img = cv2.imdecode(np.frombuffer(tiny_jpg, np.uint8), cv2.IMREAD_COLOR)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 20, (1000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 20, (1000, 2)), np.full((1000, 1), 0.9)], axis=1)
    res = list(model.predict(img, bboxes=boxes.tolist()))[0]
    assert res.ok and len(res['kpts']) == 1000
    assert max(sizes) <= model.MAX_CROPS and sum(sizes) == 1000


def test_bad_environment_variable_does_not_break_import(tmp_path, tiny_jpg):
    """``KPT_PLUGIN_MAX_PIXELS=abc``: importing works, the command fails in one line naming the variable."""
    img = tmp_path / 'p.jpg'
    img.write_bytes(tiny_jpg)
    env = dict(os.environ, KPT_PLUGIN_MAX_PIXELS='abc', OMP_NUM_THREADS='1')
    code = ('import sys, kpt_plugin, kpt_plugin_cli; sys.exit(kpt_plugin_cli.main(["predict", sys.argv[1], '
            '"--weights", sys.argv[2], "--save-dir", sys.argv[3]]))')
    proc = subprocess.run([sys.executable, '-c', code, str(img), str(tmp_path / 'w.pth'), str(tmp_path / 'o')],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    err = [ln for ln in proc.stderr.splitlines() if 'kpt-plugin' in ln]
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert len(err) == 1 and "KPT_PLUGIN_MAX_PIXELS='abc'" in err[0] and 'unset it' in err[0], proc.stderr
