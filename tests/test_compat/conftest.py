"""Fresh-interpreter helpers: import order only matters at interpreter start, so these tests run subprocesses."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='session')
def pth_dir(tmp_path_factory):
    """A site dir holding only the repo's ``kpt_plugin.pth``: ``site.addsitedir`` runs it as startup would."""
    folder = tmp_path_factory.mktemp('site')
    shutil.copy(osp.join(REPO, 'kpt_plugin.pth'), folder)
    return str(folder)


@pytest.fixture
def fresh_python(tmp_path, pth_dir):
    """``run(code, hook=True, env=None, path=(REPO,), flags=())`` -> CompletedProcess of a new interpreter.

    The repo comes first on ``PYTHONPATH`` (so an installed copy of the hook or package is never the one tested);
    with ``hook`` the repo's ``kpt_plugin.pth`` is processed by ``site.addsitedir`` before ``code``, without it
    ``KPT_PLUGIN_NO_HOOK=1`` also turns off a ``kpt_plugin.pth`` installed in site-packages. The working directory is
    a temporary one, so nothing is found through it.
    """

    def run(code, hook=True, env=None, path=(REPO,), flags=(), timeout=300):
        full_env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'KPT_PLUGIN_NO_HOOK')}
        full_env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(path))
        prelude = ''
        if hook:
            prelude = f'import site; site.addsitedir({pth_dir!r})\n'
        else:
            full_env['KPT_PLUGIN_NO_HOOK'] = '1'
        full_env.update(env or {})
        return subprocess.run([sys.executable, *flags, '-c', prelude + code], cwd=str(tmp_path), env=full_env,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope='session')
def mmcv_lite():
    """True when ``mmcv._ext`` cannot be imported (mmcv-lite): the stand-ins are in use."""
    out = subprocess.run([sys.executable, '-c', 'import mmcv._ext'], capture_output=True,
                         env=dict(os.environ, OMP_NUM_THREADS='1', KPT_PLUGIN_NO_HOOK='1'))
    return out.returncode != 0
