"""The FastAPI app: PaddleX's ``human_keypoint_detection`` serving API over an injected pipeline.

``create_app(pipeline)`` takes any object with PaddleX's pipeline ``predict`` (tests inject a fake one), so the app
holds no weights of its own and no state between requests: N replicas behind a load balancer scale it out.

Per request: admission (at most ``max_queue + max_batch`` requests in progress, else 503 at once, before the body is
read) -> the body, read with a size cap (413) and a deadline (408) -> JSON -> :class:`~.schemas.InferRequest`
(422) -> the image, downloaded or Base64-decoded and decoded with the library's limits (422) -> the micro-batcher
(:mod:`.batcher`) -> the response, drawn image encoded off the event loop. Every error is PaddleX's envelope
``{"logId", "errorCode": <HTTP status>, "errorMsg"}``.
"""
import asyncio
import base64
import json
import logging
import os
import uuid

import cv2
import numpy as np

from ..errors import KptError
from ..inference.inputs import limit
from .batcher import BatcherClosed, MicroBatcher, QueueFull
from .images import read_image_field
from .schemas import HEALTH_ENDPOINT, INFER_ENDPOINT, InferRequest, InferResponse, NoResultResponse

__all__ = ['create_app', 'create_app_from_env', 'ServingError', 'OPTIONS_ENV']

logger = logging.getLogger('kpt_plugin.serving')

#: environment variable carrying the options of ``create_app_from_env`` (uvicorn's worker processes)
OPTIONS_ENV = 'KPT_PLUGIN_SERVE_OPTIONS'


class ServingError(Exception):
    """An answer other than success: ``code`` is the HTTP status and PaddleX's ``errorCode``."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code, self.msg = code, msg


def _log_id():
    return str(uuid.uuid4())


def _error_body(code, msg, log_id=None):
    return json.dumps(dict(logId=log_id or _log_id(), errorCode=code, errorMsg=msg)).encode('utf-8')


def _default_max_body():
    # the Base64 of the largest image file accepted (KPT_PLUGIN_MAX_BYTES), plus room for the JSON around it
    return (limit('KPT_PLUGIN_MAX_BYTES') + 2) // 3 * 4 + (64 << 10)


class _Guard:
    """ASGI middleware on the inference endpoint: admission (503), body size (413) and body deadline (408).

    It reads the body itself, so a too-large or too-slow upload is refused before FastAPI buffers or parses it,
    and a full server refuses a request before reading any of it.
    """

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        st = self.state
        if scope['type'] != 'http' or scope['method'] != 'POST' or scope['path'] != INFER_ENDPOINT:
            return await self.app(scope, receive, send)
        if st.in_progress >= st.max_in_progress:
            st.rejected += 1
            return await _send_error(send, 503, f'server busy: {st.in_progress} requests in progress (the limit '
                                     'is --max-queue + --max-batch); retry later or add replicas',
                                     [(b'retry-after', b'1')])
        st.in_progress += 1
        try:
            length = dict(scope.get('headers') or ()).get(b'content-length')
            if length is not None and (not length.isdigit() or int(length) > st.max_body):
                msg = (f'request body of {int(length)} bytes exceeds the limit of {st.max_body} bytes'
                       if length.isdigit() else f'bad Content-Length {length[:40]!r}')
                return await _send_error(send, 413 if length.isdigit() else 400, msg + _BODY_HINT)
            try:
                body = await asyncio.wait_for(_read_body(receive, st.max_body), st.body_timeout)
            except _TooLarge:
                return await _send_error(send, 413, f'request body exceeds the limit of {st.max_body} bytes'
                                         + _BODY_HINT)
            except asyncio.TimeoutError:
                return await _send_error(send, 408, f'request body not received within {st.body_timeout:g} s')
            if body is None:  # the client went away
                return
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {'type': 'http.request', 'body': body, 'more_body': False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            st.in_progress -= 1


_BODY_HINT = ' (--max-body-bytes; the default follows KPT_PLUGIN_MAX_BYTES); send a smaller image file'


class _TooLarge(Exception):
    pass


async def _read_body(receive, cap):
    chunks, total = [], 0
    while True:
        msg = await receive()
        if msg['type'] == 'http.disconnect':
            return None
        chunk = msg.get('body', b'')
        total += len(chunk)
        if total > cap:
            raise _TooLarge
        chunks.append(chunk)
        if not msg.get('more_body', False):
            return b''.join(chunks)


async def _send_error(send, code, msg, headers=()):
    log_id = _log_id()
    logger.warning('%s: %d %s', log_id, code, msg)
    body = _error_body(code, msg, log_id)
    await send({'type': 'http.response.start', 'status': code,
                'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                            *headers]})
    await send({'type': 'http.response.body', 'body': body})


class _State:
    """What the app shares between requests: limits, counters, the batcher (no request data)."""

    def __init__(self, batcher, max_body, body_timeout, visualize, allow_urls):
        self.batcher, self.max_body, self.body_timeout = batcher, int(max_body), float(body_timeout)
        self.visualize, self.allow_urls = bool(visualize), bool(allow_urls)
        self.max_in_progress = batcher.max_queue + batcher.max_batch
        self.in_progress = self.rejected = 0


_FIELDS = ', '.join(InferRequest.model_fields)


def _validation_message(exc):
    """One readable line from pydantic's errors (inputs shortened: they may be a whole Base64 image)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=True):
        loc = '.'.join(str(p) for p in err.get('loc', ()))
        kind = err.get('type')
        if kind == 'json_invalid':
            parts.append(f'the body is not valid JSON ({err.get("ctx", {}).get("error", err["msg"])})')
        elif kind == 'extra_forbidden':
            parts.append(f'unknown field {loc!r} (the fields are {_FIELDS})')
        elif kind == 'model_type' or not loc:
            parts.append(f'the body must be a JSON object {{"image": ..., "detThreshold": ...}}, got '
                         f'{type(err.get("input")).__name__}')
        elif kind == 'missing':
            parts.append(f'{loc}: required')
        else:
            got = repr(err.get('input'))
            parts.append(f'{loc}: {err["msg"]} (got {got[:40]}{"..." if len(got) > 40 else ""})')
    return 'invalid request: ' + '; '.join(parts)


def _parse(body):
    from pydantic import ValidationError
    try:
        return InferRequest.model_validate_json(body)
    except ValidationError as e:
        raise ServingError(422, _validation_message(e)) from None


def _read_image(value, allow_urls):
    try:
        return read_image_field(value, allow_urls)
    except KptError as e:
        raise ServingError(422, str(e)) from None


def _encode_result(res, visualize, log_id):
    """PaddleX's response bytes for one pipeline result (``boxes`` -> ``persons``; drawn image as Base64 JPEG)."""
    persons = [dict(bbox=[float(v) for v in b['coordinate']],
                    kpts=np.asarray(b['keypoints'], dtype=np.float64).reshape(-1, 3).tolist(),
                    detScore=float(b['det_score']), kptScore=float(b['kpt_score'])) for b in res['boxes']]
    result = dict(persons=persons)
    if visualize:
        ok, buf = cv2.imencode('.jpg', res._drawn())
        if not ok:
            raise RuntimeError('OpenCV could not encode the drawn image as JPEG')
        result['image'] = base64.b64encode(buf.tobytes()).decode('ascii')
    # PaddleX's field order; strict JSON: a non-finite value is a bug, not a token a client must parse
    return json.dumps(dict(logId=log_id, result=result, errorCode=0, errorMsg='Success'), allow_nan=False,
                      separators=(',', ':')).encode('utf-8')


def create_app(pipeline, *, max_batch=8, max_wait_ms=5.0, max_queue=64, max_body_bytes=None,
               body_timeout_s=60.0, visualize=True, allow_urls=True, title='kpt_plugin serving'):
    """The FastAPI app serving ``pipeline`` with PaddleX's ``human_keypoint_detection`` API.

    Args:
        pipeline: has ``predict(images, batch_size=n, det_threshold=t)`` (BGR arrays in, one result per image:
            ``{'boxes': [{'coordinate', 'det_score', 'keypoints', 'kpt_score'}]}`` with ``_drawn()``), as
            :class:`~kpt_plugin.inference.pipeline.KeypointPipeline`; only one thread ever calls it.
        max_batch (int): images per ``predict`` call (1: no micro-batching).
        max_wait_ms (float): how long a batch waits to fill.
        max_queue (int): images waiting for the network; more requests than ``max_queue + max_batch`` in progress
            answer 503 at once.
        max_body_bytes (int, optional): request body cap (413); default: the Base64 of ``KPT_PLUGIN_MAX_BYTES``.
        body_timeout_s (float): the whole body must arrive within this (408), so slow uploads cannot hold slots.
        visualize (bool): return the drawn image unless the request says ``"visualize": false`` (PaddleX's
            ``Serving.visualize``, default on).
        allow_urls (bool): fetch http(s) URLs given as ``image`` (off: Base64 only).

    Returns:
        fastapi.FastAPI: the batcher starts and stops with the app's lifespan.
    """
    import contextlib

    import fastapi
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    for name in ('KPT_PLUGIN_MAX_BYTES', 'KPT_PLUGIN_URL_TIMEOUT', 'KPT_PLUGIN_MAX_PIXELS'):
        limit(name)  # a bad environment variable fails now, not on the first request
    batcher = MicroBatcher(pipeline, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    state = _State(batcher, _default_max_body() if max_body_bytes is None else max_body_bytes, body_timeout_s,
                   visualize, allow_urls)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(batcher.close)

    app = fastapi.FastAPI(title=title, lifespan=lifespan,
                          description="PaddleX's human_keypoint_detection serving API (PicoDet -> PP-TinyPose)")
    app.state.serving = state
    app.add_middleware(_Guard, state=state)

    def envelope(code, msg, log_id=None, headers=None):
        return Response(_error_body(code, msg, log_id), status_code=code, media_type='application/json',
                        headers=headers)

    @app.get(HEALTH_ENDPOINT, operation_id='checkHealth', response_model=NoResultResponse)
    async def _check_health():
        if not batcher.alive:
            return envelope(503, 'Unhealthy: the inference worker is not running')
        return JSONResponse(dict(logId=_log_id(), errorCode=0, errorMsg='Healthy'))

    error_docs = {code: {'model': NoResultResponse, 'description': what} for code, what in (
        (408, 'the body did not arrive in time'), (413, 'the body is too large'),
        (422, 'invalid request or image (unknown field, bad Base64, not an image, over a limit, URL failed)'),
        (500, 'internal error'), (503, 'server busy (queue full) or shutting down'))}

    @app.post(INFER_ENDPOINT, operation_id='infer', response_model=InferResponse, responses=error_docs,
              response_model_exclude_none=True,
              openapi_extra={'requestBody': {'required': True, 'content': {
                  'application/json': {'schema': InferRequest.model_json_schema()}}}})
    async def _infer(request: fastapi.Request):
        log_id = _log_id()
        try:
            # parsing and decoding run in threads: a large body never stalls the event loop
            req = await run_in_threadpool(_parse, await request.body())
            img = await run_in_threadpool(_read_image, req.image, state.allow_urls)
            try:
                future = batcher.submit(img, req.detThreshold)
            except QueueFull as e:
                raise ServingError(503, f'server busy: {e}; retry later or add replicas') from None
            except BatcherClosed as e:
                raise ServingError(503, str(e)) from None
            del img
            try:
                res = await asyncio.wrap_future(future)
            except KptError as e:
                raise ServingError(422, str(e)) from None
            except BatcherClosed as e:
                raise ServingError(503, str(e)) from None
            if res.get('error'):
                # PaddleX answers a pipeline's error item with 500 and its message
                raise ServingError(500, str(res['error']))
            visualize = state.visualize if req.visualize is None else req.visualize
            body = await run_in_threadpool(_encode_result, res, visualize, log_id)
        except ServingError as e:
            logger.warning('%s: %d %s', log_id, e.code, e.msg)
            return envelope(e.code, e.msg, log_id, {'retry-after': '1'} if e.code == 503 else None)
        except Exception:  # noqa: BLE001 - a bug: logged with its traceback, the server goes on
            logger.exception('%s: unexpected failure', log_id)
            return envelope(500, 'Internal server error', log_id)
        return Response(body, media_type='application/json')

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        return envelope(422, json.dumps(exc.errors(), default=str)[:2000])

    @app.exception_handler(HTTPException)
    async def _http(request, exc):
        # unknown path (404), wrong method (405): the same envelope as every other answer
        return envelope(exc.status_code, str(exc.detail), headers=getattr(exc, 'headers', None))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        logger.error('unhandled exception', exc_info=exc)
        return envelope(500, 'Internal server error')

    return app


def create_app_from_env():
    """App factory for uvicorn's worker processes (``--workers N``): builds the pipeline from :data:`OPTIONS_ENV`.

    The variable holds JSON ``{"pipeline": create_pipeline kwargs, "app": create_app kwargs, "threads": int}``.
    """
    from ..inference.pipeline import create_pipeline
    opts = json.loads(os.environ[OPTIONS_ENV])
    if opts.get('threads'):
        import torch
        torch.set_num_threads(int(opts['threads']))
    pipeline = create_pipeline('human_keypoint_detection', **opts.get('pipeline', {}))
    return create_app(pipeline, **opts.get('app', {}))
