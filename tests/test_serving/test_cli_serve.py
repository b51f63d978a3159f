"""``kpt-plugin serve`` options: user errors are one-line KptErrors raised before any model loads."""
import argparse
import os
import socket
import subprocess
import sys

import pytest

from kpt_plugin.cli import serve
from kpt_plugin.errors import KptError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _args(*argv):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    serve.add_parser(sub)
    return p.parse_args(['serve', *argv])


def test_defaults_follow_paddlex():
    a = _args()
    assert (a.pipeline, a.host, a.port, a.precision, a.workers) == ('human_keypoint_detection', '127.0.0.1', 8080,
                                                                    'fp32', 1)
    assert a.func is serve.run


@pytest.mark.parametrize('argv, needle', [
    (['--precision', 'fp16'], 'only fp32'),
    (['--workers', '0'], '--workers must be >= 1'),
    (['--max-batch', '0'], '--max-batch must be >= 1'),
    (['--max-queue', '0'], '--max-queue must be >= 1'),
    (['--max-wait-ms', '-1'], '--max-wait-ms'),
    (['--port', '70000'], '--port must be in'),
    (['--det-threshold', '2'], '--det-threshold'),
    (['--pipeline', 'ocr'], 'human_keypoint_detection or a PaddleX pipeline config'),
    (['--max-body-bytes', '0'], '--max-body-bytes'),
])
def test_bad_options_raise_kpt_error(argv, needle):
    with pytest.raises(KptError, match=needle):
        serve.run(_args(*argv))


def test_busy_port_fails_before_loading():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(KptError, match='cannot bind'):
            serve.run(_args('--port', str(port)))


def test_python_m_entry_point():
    """``python -m kpt_plugin.serving``: a user error is one line and exit code 2 (as ``kpt-plugin``)."""
    out = subprocess.run([sys.executable, '-m', 'kpt_plugin.serving', '--precision', 'int8'], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        'kpt-plugin serve: error: --precision int8: only fp32 is served (every backend runs the fp32 graph); '
        'drop the option']


def test_run_hands_uvicorn_the_app_or_the_worker_factory(monkeypatch, helpers):
    """workers=1: the app object over the pipeline built here; workers=N: the factory + options in the environment,
    which rebuilds the same pipeline and app in each worker process."""
    import json

    import uvicorn

    from kpt_plugin.inference import pipeline as pipeline_mod
    from kpt_plugin.serving import app as app_mod
    built, calls = [], []

    def fake_create_pipeline(name, **kw):
        built.append((name, kw))
        return helpers.FakePipeline()

    monkeypatch.setattr(pipeline_mod, 'create_pipeline', fake_create_pipeline)
    monkeypatch.setattr(uvicorn, 'run', lambda app, **kw: calls.append((app, kw)))
    monkeypatch.delenv(app_mod.OPTIONS_ENV, raising=False)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert serve.run(_args('--port', '0', '--kpt-weights', 'k.pth', '--max-batch', '3', '--no-visualize')) == 0
    app, kw = calls[-1]
    assert kw == dict(host='127.0.0.1', port=0, log_level='info')
    assert built[-1] == ('human_keypoint_detection', dict(kpt_model_dir='k.pth', backend='torch'))
    st = app.state.serving
    assert (st.batcher.max_batch, st.visualize, st.allow_urls) == (3, False, True)

    assert serve.run(_args('--port', '0', '--workers', '2', '--backend', 'hpip', '--no-url-inputs')) == 0
    target, kw = calls[-1]
    assert target == 'kpt_plugin.serving.app:create_app_from_env' and kw['factory'] and kw['workers'] == 2
    opts = json.loads(os.environ[app_mod.OPTIONS_ENV])
    assert opts['pipeline'] == dict(backend='auto') and opts['app']['allow_urls'] is False
    assert opts['threads'] == max(1, (os.cpu_count() or 1) // 2)
    opts['threads'] = None  # leave this process's torch threads alone
    monkeypatch.setenv(app_mod.OPTIONS_ENV, json.dumps(opts))
    worker_app = app_mod.create_app_from_env()
    assert built[-1] == ('human_keypoint_detection', dict(backend='auto'))
    assert worker_app.state.serving.allow_urls is False


def test_launcher_entry(monkeypatch):
    """The ``kpt-plugin serve`` entry (``kpt_plugin_cli.SUBCOMMANDS['serve']``) builds this parser."""
    import kpt_plugin_cli
    monkeypatch.setitem(kpt_plugin_cli.SUBCOMMANDS, 'serve', ('kpt_plugin.cli.serve', 'serve'))
    args = kpt_plugin_cli.build_parser('serve').parse_args(['serve', '--port', '0', '--max-batch', '2'])
    assert args.func is serve.run and (args.port, args.max_batch) == (0, 2)
