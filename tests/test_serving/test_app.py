"""The serving app against a fake pipeline: PaddleX's schema, every bad input's answer, batching, 503, limits."""
import base64
import http.server
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from kpt_plugin.serving.schemas import INFER_ENDPOINT, InferResponse

PADDLEX_KEYS = ['logId', 'result', 'errorCode', 'errorMsg']


def _post(base, payload, **kw):
    return httpx.post(base + INFER_ENDPOINT, json=payload, timeout=30, **kw)


def _assert_ok(base, helpers, w=32, h=24):
    """The server still answers a good request correctly."""
    r = _post(base, {'image': helpers.png_b64(w, h)})
    assert r.status_code == 200, r.text
    assert r.json()['result']['persons'][0]['bbox'] == [0.0, 0.0, float(w), float(h)]


def _assert_error(r, code, *needles):
    assert r.status_code == code, (r.status_code, r.text[:500])
    body = r.json()
    assert list(body) == ['logId', 'errorCode', 'errorMsg'] and body['errorCode'] == code
    uuid.UUID(body['logId'])
    for n in needles:
        assert n in body['errorMsg'], body['errorMsg']
    return body['errorMsg']


def test_schema_round_trip(fake_server, helpers):
    base, app, pipe = fake_server()
    r = _post(base, {'image': helpers.png_b64(40, 30), 'detThreshold': 0.25})
    assert r.status_code == 200 and r.headers['content-type'] == 'application/json'
    body = r.json()
    assert list(body) == PADDLEX_KEYS and body['errorCode'] == 0 and body['errorMsg'] == 'Success'
    uuid.UUID(body['logId'])
    InferResponse.model_validate(body)  # PaddleX's models accept it
    (person, ) = body['result']['persons']
    assert list(person) == ['bbox', 'kpts', 'detScore', 'kptScore']
    assert person['bbox'] == [0.0, 0.0, 40.0, 30.0] and person['detScore'] == 0.25 and person['kptScore'] == 0.75
    assert person['kpts'] == [[20.0, 10.0, 0.75]] * 17
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(body['result']['image']), np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (30, 40, 3)
    assert pipe.calls == [(1, 0.25)]
    # visualize off (PaddleX's request switch): no image; PaddleX leaves null fields out
    r = _post(base, {'image': helpers.png_b64(), 'detThreshold': None, 'visualize': False})
    assert r.status_code == 200 and 'image' not in r.json()['result']
    assert pipe.calls[-1] == (1, None)


def test_server_visualize_off_and_request_override(fake_server, helpers):
    base, _, _ = fake_server(visualize=False)
    assert 'image' not in _post(base, {'image': helpers.png_b64()}).json()['result']
    assert 'image' in _post(base, {'image': helpers.png_b64(), 'visualize': True}).json()['result']


def test_health_docs_openapi(fake_server):
    base, _, _ = fake_server()
    r = httpx.get(base + '/health')
    assert r.status_code == 200
    assert r.json()['errorCode'] == 0 and r.json()['errorMsg'] == 'Healthy'
    assert httpx.get(base + '/docs').status_code == 200
    spec = httpx.get(base + '/openapi.json').json()
    op = spec['paths'][INFER_ENDPOINT]['post']
    assert op['operationId'] == 'infer'
    req = op['requestBody']['content']['application/json']['schema']
    assert set(req['properties']) == {'image', 'detThreshold', 'visualize'} and req['required'] == ['image']
    assert {'413', '422', '500', '503'} <= set(op['responses'])


B64_TEXT = base64.b64encode(b'hello, this is not an image').decode()


@pytest.mark.parametrize('body, code, needles', [
    (b'{"image": ', 422, ['not valid JSON']),
    (b'\xff\xfe garbage', 422, ['not valid JSON']),
    (b'[1, 2]', 422, ['must be a JSON object']),
    (b'{}', 422, ['image: required']),
    (b'{"image": "x", "detThreshhold": 0.3}', 422, ["unknown field 'detThreshhold'", 'detThreshold']),
    (b'{"image": 123}', 422, ['image: Input should be a valid string']),
    (b'{"image": "", "detThreshold": "high"}', 422, ['detThreshold']),
    (b'{"image": "aGk=", "detThreshold": 1.5}', 422, ['detThreshold', 'less than or equal to 1']),
    (b'{"image": "aGk=", "detThreshold": NaN}', 422, ['detThreshold']),
    (b'{"image": ""}', 422, ['image: empty']),
    (b'{"image": "@@@not base64@@@"}', 422, ['neither an http(s) URL nor valid Base64']),
    (b'{"image": "aGk"}', 422, ['nor valid Base64']),
    (('{"image": "%s"}' % B64_TEXT).encode(), 422, ['image: not a readable image']),
    (b'{"image": "file:///etc/passwd"}', 422, ['file:// scheme is not supported']),
])
def test_bad_inputs_answer_422_and_the_server_goes_on(fake_server, helpers, body, code, needles):
    base, app, pipe = fake_server()
    r = httpx.post(base + INFER_ENDPOINT, content=body, headers={'content-type': 'application/json'}, timeout=30)
    _assert_error(r, code, *needles)
    assert pipe.calls == []  # refused before the network
    _assert_ok(base, helpers)


def test_wrong_method_and_path_use_the_envelope(fake_server, helpers):
    base, _, _ = fake_server()
    _assert_error(httpx.get(base + INFER_ENDPOINT), 405)
    _assert_error(httpx.post(base + '/nope', json={}), 404)
    _assert_ok(base, helpers)


def test_base64_variants_accepted(fake_server, helpers):
    """Line-wrapped Base64 (the `base64` tool's output) and data URLs decode as PaddleX's lenient decoder does."""
    base, _, _ = fake_server()
    b64 = helpers.png_b64(20, 10)
    wrapped = '\n'.join(b64[i:i + 76] for i in range(0, len(b64), 76))
    for image in (wrapped, 'data:image/png;base64,' + b64):
        r = _post(base, {'image': image})
        assert r.status_code == 200, r.text
        assert r.json()['result']['persons'][0]['bbox'] == [0.0, 0.0, 20.0, 10.0]


def test_image_limits(fake_server, helpers, monkeypatch):
    base, _, _ = fake_server()
    monkeypatch.setenv('KPT_PLUGIN_MAX_PIXELS', '500')
    _assert_error(_post(base, {'image': helpers.png_b64(40, 30)}), 422, '40x30', 'KPT_PLUGIN_MAX_PIXELS')
    monkeypatch.delenv('KPT_PLUGIN_MAX_PIXELS')
    monkeypatch.setenv('KPT_PLUGIN_MAX_BYTES', '100')
    _assert_error(_post(base, {'image': helpers.png_b64(64, 64, value=7)}), 422, 'KPT_PLUGIN_MAX_BYTES')
    monkeypatch.delenv('KPT_PLUGIN_MAX_BYTES')
    _assert_ok(base, helpers)


def test_body_size_limit_413(fake_server, helpers):
    base, _, pipe = fake_server(max_body_bytes=4000)
    big = {'image': 'A' * 8000}
    _assert_error(_post(base, big), 413, 'exceeds the limit of 4000 bytes')

    def chunks():  # no Content-Length: counted while it arrives
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    r = httpx.post(base + INFER_ENDPOINT, content=chunks(), headers={'content-type': 'application/json'}, timeout=30)
    _assert_error(r, 413, 'exceeds the limit of 4000 bytes')
    assert pipe.calls == []
    _assert_ok(base, helpers, 8, 8)


def test_slow_body_408(fake_server, helpers):
    base, _, _ = fake_server(body_timeout_s=0.5)
    port = int(base.rsplit(':', 1)[1])
    with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
        s.sendall(f'POST {INFER_ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                  'Content-Length: 1000\r\n\r\n{"image": '.encode())
        t0 = time.monotonic()
        reply = b''
        while b'not received' not in reply:  # headers and body may come in separate segments
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
    assert reply.startswith('HTTP/1.1 408') and 'not received within 0.5 s' in reply
    assert time.monotonic() - t0 < 5
    _assert_ok(base, helpers)


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    png = None

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == '/img.png':
            self.send_response(200)
            self.send_header('Content-Length', str(len(self.png)))
            self.end_headers()
            self.wfile.write(self.png)
        elif self.path == '/slow.png':
            self.send_response(200)
            self.end_headers()
            for _ in range(40):  # trickles: each read is quick, the whole is not
                self.wfile.write(b'\x89')
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.send_error(404)

    def log_message(self, *a):
        pass


@pytest.fixture
def image_site(helpers):
    _ImageHandler.png = base64.b64decode(helpers.png_b64(50, 20))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _ImageHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def test_url_inputs(fake_server, helpers, image_site, monkeypatch):
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    base, _, _ = fake_server()
    r = _post(base, {'image': image_site + '/img.png'})
    assert r.status_code == 200 and r.json()['result']['persons'][0]['bbox'] == [0.0, 0.0, 50.0, 20.0]
    _assert_error(_post(base, {'image': image_site + '/missing.png'}), 422, 'HTTP 404')
    monkeypatch.setenv('KPT_PLUGIN_URL_TIMEOUT', '0.5')
    t0 = time.monotonic()
    _assert_error(_post(base, {'image': image_site + '/slow.png'}), 422, 'KPT_PLUGIN_URL_TIMEOUT')
    assert time.monotonic() - t0 < 3
    monkeypatch.delenv('KPT_PLUGIN_URL_TIMEOUT')
    monkeypatch.setenv('KPT_PLUGIN_MAX_BYTES', '50')
    _assert_error(_post(base, {'image': image_site + '/img.png'}), 422, 'KPT_PLUGIN_MAX_BYTES')
    monkeypatch.delenv('KPT_PLUGIN_MAX_BYTES')
    _assert_ok(base, helpers)


def test_url_inputs_can_be_refused(fake_server, helpers, image_site):
    base, _, _ = fake_server(allow_urls=False)
    _assert_error(_post(base, {'image': image_site + '/img.png'}), 422, 'does not fetch URLs')
    _assert_ok(base, helpers)


def _settled(state, timeout=10.0):
    """``state.in_progress`` once it stops falling: the server lowers it when its handler has unwound, which may
    be just after the client read the reply."""
    t0 = time.monotonic()
    while state.in_progress and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    return state.in_progress


def test_full_queue_answers_503_quickly(fake_server, helpers):
    gate = threading.Event()
    pipe = helpers.FakePipeline(gate=gate)
    base, app, _ = fake_server(pipe, max_batch=1, max_queue=1, max_wait_ms=0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_post, base, {'image': helpers.png_b64(10, 10)})
        assert pipe.started.wait(30)  # the worker holds the first image
        second = pool.submit(_post, base, {'image': helpers.png_b64(11, 11)})
        t0 = time.monotonic()
        while app.state.serving.in_progress < 2:  # the second is admitted (queued)
            assert time.monotonic() - t0 < 30
            time.sleep(0.01)
        t0 = time.monotonic()
        r = _post(base, {'image': helpers.png_b64()})
        assert time.monotonic() - t0 < 1.0
        _assert_error(r, 503, 'server busy')
        assert r.headers['retry-after'] == '1'
        gate.set()
        assert first.result().status_code == 200 and second.result().status_code == 200
    assert second.result().json()['result']['persons'][0]['bbox'] == [0.0, 0.0, 11.0, 11.0]
    _assert_ok(base, helpers)
    assert _settled(app.state.serving) == 0  # no slot leaked


def test_concurrent_requests_are_micro_batched(fake_server, helpers):
    pipe = helpers.FakePipeline(delay=0.3)
    base, app, _ = fake_server(pipe, max_batch=8, max_wait_ms=200)
    sizes = [(16 + i, 8 + i) for i in range(8)]
    thresholds = [None, 0.3] * 4
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda a: _post(base, {'image': helpers.png_b64(*a[0]), 'detThreshold': a[1]}),
                           zip(sizes, thresholds)))
    elapsed = time.monotonic() - t0
    for (w, h), thr, r in zip(sizes, thresholds, rs):
        assert r.status_code == 200, r.text
        (p, ) = r.json()['result']['persons']
        assert p['bbox'] == [0.0, 0.0, float(w), float(h)] and p['detScore'] == (0.5 if thr is None else thr)
    # serial would be 8 calls (2.4 s); batched: one call per threshold per batch
    assert len(pipe.calls) <= 4, pipe.calls
    assert sum(n for n, _ in pipe.calls) == 8 and max(n for n, _ in pipe.calls) > 1
    assert elapsed < 2.4, elapsed
    stats = app.state.serving.batcher.stats
    assert stats['images'] == 8 and stats['largest_batch'] > 1


def test_failures_stay_with_their_request(fake_server, helpers):
    """A call that raises is rerun image by image: only the culprit fails (500), the batch's others succeed."""
    pipe = helpers.FakePipeline(delay=0.2, fail_value=7, error_value=9)
    base, _, _ = fake_server(pipe, max_batch=4, max_wait_ms=200)
    values = [100, 7, 101, 9]
    with ThreadPoolExecutor(4) as pool:
        rs = list(pool.map(lambda v: _post(base, {'image': helpers.png_b64(value=v)}), values))
    assert rs[0].status_code == 200 and rs[2].status_code == 200
    _assert_error(rs[1], 500, 'Internal server error')
    _assert_error(rs[3], 500, 'NaN outputs')  # a pipeline error item: PaddleX's 500 with its message
    _assert_ok(base, helpers)


def test_no_slot_or_thread_leaks(fake_server, helpers):
    base, app, pipe = fake_server(max_batch=4, max_wait_ms=1)
    before = threading.active_count()
    good = {'image': helpers.png_b64()}
    payloads = [good, {'image': '@@'}, {'x': 1}, {'image': B64_TEXT}] * 15
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda p: _post(base, p).status_code, payloads))
    assert codes == [200, 422, 422, 422] * 15
    st = app.state.serving
    assert _settled(st) == 0 and st.batcher._queue.qsize() == 0
    assert threading.active_count() <= before + 8  # starlette's thread pool may have grown, nothing else
    assert st.batcher.alive
