"""Serving test helpers: a fake pipeline (fast, no weights), an in-process uvicorn server on a free port."""
import base64
import contextlib
import threading
import time

import numpy as np
import pytest

# fastapi / uvicorn / httpx come from requirements/serving.txt; a missing one fails the suite (never a skip)
import cv2  # noqa: E402
import httpx  # noqa: E402,F401
import uvicorn  # noqa: E402


class FakeResult(dict):
    """A pipeline result: boxes derived from the image, so a response can be matched to its request."""

    def __init__(self, data, img):
        super().__init__(data)
        self.img = img

    def _drawn(self):
        return 255 - self.img


class FakePipeline:
    """``predict`` as KeypointPipeline's: one result per image; the person box is the whole image.

    Args:
        delay (float): seconds per call (not per image: batching pays off).
        gate (threading.Event): calls wait for it (to hold the worker busy).
        fail_value (int): an image whose pixel [0, 0, 0] equals it makes the whole call raise.
        error_value (int): such an image yields a result with ``error``.
    """

    def __init__(self, delay=0.0, gate=None, fail_value=None, error_value=None):
        self.delay, self.gate, self.fail_value, self.error_value = delay, gate, fail_value, error_value
        self.calls = []
        self.started = threading.Event()

    def predict(self, images, batch_size=1, det_threshold=None):
        self.calls.append((len(images), det_threshold))
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30), 'test gate never opened'
        if self.delay:
            time.sleep(self.delay)
        if any(int(im[0, 0, 0]) == self.fail_value for im in images):
            raise RuntimeError('fake network failure')
        thr = 0.5 if det_threshold is None else det_threshold
        for im in images:
            h, w = im.shape[:2]
            if int(im[0, 0, 0]) == self.error_value:
                yield FakeResult(dict(input_path=None, boxes=[], error='<ndarray #0>: NaN outputs'), None)
                continue
            kpts = np.tile(np.array([w / 2, h / 3, 0.75], np.float32), (17, 1))
            yield FakeResult(dict(input_path=None, boxes=[dict(coordinate=[0.0, 0.0, float(w), float(h)],
                                                                det_score=float(thr), keypoints=kpts,
                                                                kpt_score=np.float32(0.75))]), im)


def png_b64(w=32, h=24, value=100):
    img = np.full((h, w, 3), value, np.uint8)
    img[h // 2:, :, 1] = 200
    ok, buf = cv2.imencode('.png', img)
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


@contextlib.contextmanager
def running(app):
    """Serve ``app`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=0, log_level='warning', lifespan='on'))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        assert thread.is_alive() and time.monotonic() - t0 < 60, 'the test server did not start'
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f'http://127.0.0.1:{port}'
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), 'the test server did not stop'


@pytest.fixture
def fake_server():
    """``start(pipeline=None, **create_app kwargs)`` -> (base URL, app, pipeline); stopped after the test."""
    from kpt_plugin.serving.app import create_app
    stack = contextlib.ExitStack()

    def start(pipeline=None, **kw):
        pipeline = pipeline or FakePipeline()
        app = create_app(pipeline, **kw)
        return stack.enter_context(running(app)), app, pipeline

    with stack:
        yield start


@pytest.fixture
def helpers():
    import types
    return types.SimpleNamespace(FakePipeline=FakePipeline, png_b64=png_b64, running=running)
