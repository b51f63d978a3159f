import os
import os.path as osp

# Keep the suite fast and deterministic on small CI machines (set before torch/numpy spin up threads).
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

import pytest  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(REPO_ROOT), 'shared'))


def pytest_configure(config):
    import tempfile
    import torch
    torch.set_num_threads(1)
    # the suite never reads or fills the user's real cache (~/.cache/kpt_plugin): downloads, converted
    # weights and ONNX graphs go to a throw-away home unless a test sets its own
    os.environ['KPT_PLUGIN_HOME'] = tempfile.mkdtemp(prefix='kpt_plugin_home_')


@pytest.fixture(scope='session')
def shared_dir():
    """``../shared`` (golden fixtures, weights, data). Missing it is an error, never a skip."""
    assert osp.isdir(osp.join(SHARED, 'fixtures')), (
        f'../shared not found at {SHARED}: the parity tests need it beside the repo '
        '(or set KPT_PLUGIN_SHARED).')
    return SHARED


@pytest.fixture(scope='session')
def enhance_ckpt(shared_dir, tmp_path_factory):
    """The official enhance weights (BN-folded fixture) converted once per session.

    Returns a function ``size -> .pth path`` for ``'128x96'`` or ``'256x192'``.
    """
    paths = {}

    def get(size='128x96'):
        if size not in paths:
            from weight_convert.convert import convert
            out = str(tmp_path_factory.mktemp('enhance_ckpt') / f'pp_tinypose_{size}.pth')
            convert(osp.join(shared_dir, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), out,
                    arch=f'PP-TinyPose_{size}')
            paths[size] = out
        return paths[size]

    return get


@pytest.fixture(scope='module', autouse=True)
def _background_exports_finish_within_their_module():
    """A cold graph backend exports its graphs (backend auto tunes) in a background thread; join them at the end
    of each test module, so no torch export of one module overlaps the (in-process) training or timing of the next."""
    yield
    import threading
    for t in threading.enumerate():
        if t.name in ('kpt_plugin-export', 'kpt_plugin-tune') and t is not threading.current_thread():
            t.join(timeout=300)


def pytest_unconfigure(config):
    import shutil
    home = os.environ.get('KPT_PLUGIN_HOME', '')
    if osp.basename(home).startswith('kpt_plugin_home_'):
        shutil.rmtree(home, ignore_errors=True)
