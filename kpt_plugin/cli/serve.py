"""``kpt-plugin serve``: PaddleX's serving API for ``human_keypoint_detection`` on FastAPI + uvicorn.

A client written for ``paddlex --serve --pipeline human_keypoint_detection`` works unchanged: ``POST
/human-keypoint-detection``, ``GET /health``, OpenAPI docs at ``/docs``. See docs/serving.md.
"""
import argparse
import os
import os.path as osp
import sys
import time

from .options import BACKENDS

_PIPELINE = 'human_keypoint_detection'
_INSTALL_HINT = 'pip install -r requirements/serving.txt -c requirements/constraints.txt (or kpt_plugin[serving])'


def add_parser(subparsers):
    p = subparsers.add_parser(
        'serve', help="serve PaddleX's human_keypoint_detection HTTP API (FastAPI + uvicorn)",
        description="Serve PaddleX's human_keypoint_detection API: POST /human-keypoint-detection {\"image\": URL or "
        'Base64, "detThreshold": float}, GET /health, docs at /docs. Concurrent requests are micro-batched. '
        'The server is stateless: scale out with --workers or replicas behind a load balancer.')
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def _add_arguments(p):
    p.add_argument('--pipeline', default=_PIPELINE, help=f'pipeline name ({_PIPELINE}) or a PaddleX pipeline config '
                   '.yaml (its SubModules and Serving.visualize apply)')
    p.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1; 0.0.0.0 for all '
                   'interfaces, as PaddleX)')
    p.add_argument('--port', type=int, default=8080, help='port (default 8080, as PaddleX; 0: any free port)')
    p.add_argument('--det-model', default=None, help='detector name (default PicoDet-S_pedestrian_320)')
    p.add_argument('--det-weights', default=None, help='local detector weights (any form the converter reads)')
    p.add_argument('--kpt-model', default=None, help='keypoint model name (default PP-TinyPose_128x96)')
    p.add_argument('--kpt-weights', default=None, help='local keypoint weights (.pth, .pdparams, Paddle inference '
                   'dir, OpenVINO IR, ncnn)')
    p.add_argument('--det-threshold', type=float, default=None, help="default detector threshold when a request "
                   "gives none (default: the pipeline's, 0.5)")
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N, gpu, gpu:N, npu, npu:N (default: best '
                   'available)')
    p.add_argument('--backend', choices=BACKENDS, default='torch',
                   help='keypoint backend (as kpt-plugin predict; hpip = the high-performance choice)')
    p.add_argument('--precision', default='fp32', help='fp32 (the only precision served)')
    p.add_argument('--workers', type=int, default=1, help='uvicorn worker processes, each with its own model and '
                   'batcher (default 1); torch threads are split between them unless OMP_NUM_THREADS is set')
    p.add_argument('--max-batch', type=int, default=8, help='images per network call (default 8; 1 turns '
                   'micro-batching off)')
    p.add_argument('--max-wait-ms', type=float, default=5.0, help='how long a batch waits to fill (default 5)')
    p.add_argument('--max-queue', type=int, default=64, help='images waiting per worker; beyond (plus a running '
                   'batch) requests answer 503 at once (default 64)')
    p.add_argument('--max-body-bytes', type=int, default=None, help='request body cap, 413 beyond (default: the '
                   'Base64 of KPT_PLUGIN_MAX_BYTES)')
    p.add_argument('--no-visualize', action='store_true', help='no drawn image in responses unless a request asks '
                   '("visualize": true)')
    p.add_argument('--no-url-inputs', action='store_true', help='refuse URLs as "image" (Base64 only): the server '
                   'then fetches nothing a client names')
    p.add_argument('--log-level', default='info', choices=['critical', 'error', 'warning', 'info', 'debug'])


def _check_args(args):
    from kpt_plugin.errors import KptError
    if str(args.precision).lower() != 'fp32':
        raise KptError(f'--precision {args.precision}: only fp32 is served (every backend runs the fp32 graph); '
                       'drop the option')
    for name, lo in (('workers', 1), ('max_batch', 1), ('max_queue', 1)):
        if getattr(args, name) < lo:
            raise KptError(f'--{name.replace("_", "-")} must be >= {lo}, got {getattr(args, name)}')
    if not args.max_wait_ms >= 0:
        raise KptError(f'--max-wait-ms must be >= 0, got {args.max_wait_ms}')
    if not 0 <= args.port <= 65535:
        raise KptError(f'--port must be in 0..65535, got {args.port}')
    if args.max_body_bytes is not None and args.max_body_bytes < 1:
        raise KptError(f'--max-body-bytes must be >= 1, got {args.max_body_bytes}')
    if args.det_threshold is not None and not 0 <= args.det_threshold <= 1:
        raise KptError(f'--det-threshold must be in [0, 1], got {args.det_threshold}')
    config = None
    if args.pipeline != _PIPELINE:
        if not (args.pipeline.lower().endswith(('.yaml', '.yml')) and osp.isfile(args.pipeline)):
            raise KptError(f'--pipeline {args.pipeline!r}: give {_PIPELINE} or a PaddleX pipeline config .yaml file')
        config = args.pipeline
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise KptError(f'serving needs fastapi and uvicorn ({e}); {_INSTALL_HINT}') from None
    _check_port(args.host, args.port)
    return config


def _check_port(host, port):
    """Fail before the (slow) model load when the address cannot be bound."""
    import socket
    from kpt_plugin.errors import KptError
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise KptError(f'--host {host}: cannot resolve it ({e.strerror})') from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(addr)
        except OSError as e:
            raise KptError(f'--host {host} --port {port}: cannot bind ({e.strerror}); is another server running '
                           'there? Choose another --port') from None


def _serving_config(config):
    """PaddleX's ``Serving`` section of a pipeline config (``visualize``), or {}."""
    if config is None:
        return {}
    import yaml
    with open(config, encoding='utf-8') as f:
        return dict((yaml.safe_load(f) or {}).get('Serving') or {})


def run(args):
    config = _check_args(args)
    pipe_kw = dict(config=config, det_model=args.det_model, kpt_model=args.kpt_model, det_model_dir=args.det_weights,
                   kpt_model_dir=args.kpt_weights, device=args.device, det_threshold=args.det_threshold,
                   backend='auto' if args.backend == 'hpip' else args.backend)
    pipe_kw = {k: v for k, v in pipe_kw.items() if v is not None}
    visualize = bool(_serving_config(config).get('visualize', True)) and not args.no_visualize
    app_kw = dict(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                  max_body_bytes=args.max_body_bytes, visualize=visualize, allow_urls=not args.no_url_inputs)

    import uvicorn
    from kpt_plugin.inference.pipeline import create_pipeline
    t0 = time.perf_counter()
    # built here even with --workers N: a bad option fails now with one line, and the converted weights are cached
    # before N processes load them
    pipeline = create_pipeline(_PIPELINE, **pipe_kw)
    print(f'kpt-plugin serve: {pipeline!r} loaded in {time.perf_counter() - t0:.1f} s', file=sys.stderr)
    _quiet_health_log()
    common = dict(host=args.host, port=args.port, log_level=args.log_level)
    if args.workers == 1:
        from kpt_plugin.serving.app import create_app
        uvicorn.run(create_app(pipeline, **app_kw), **common)
        return 0
    import json
    from kpt_plugin.serving.app import OPTIONS_ENV
    del pipeline
    threads = None if os.environ.get('OMP_NUM_THREADS') else max(1, (os.cpu_count() or 1) // args.workers)
    os.environ[OPTIONS_ENV] = json.dumps(dict(pipeline=pipe_kw, app=app_kw, threads=threads))
    uvicorn.run('kpt_plugin.serving.app:create_app_from_env', factory=True, workers=args.workers, **common)
    return 0


def _quiet_health_log():
    # load balancers poll /health every few seconds; PaddleX keeps those out of the access log too
    import logging

    class _NoHealth(logging.Filter):
        def filter(self, record):
            return '/health' not in record.getMessage()

    logging.getLogger('uvicorn.access').addFilter(_NoHealth())


def main(argv=None):
    """``python -m kpt_plugin.serving``: the same options as ``kpt-plugin serve``."""
    from kpt_plugin.errors import KptError
    parser = argparse.ArgumentParser(prog='python -m kpt_plugin.serving', description=__doc__.splitlines()[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(run(args) or 0)
    except KptError as e:
        print(f'kpt-plugin serve: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
