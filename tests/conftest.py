import os
import os.path as osp

# Keep the suite fast and deterministic on small CI machines (set before torch/numpy spin up threads).
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

import pytest  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(REPO_ROOT), 'shared'))


def pytest_configure(config):
    import torch
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def shared_dir():
    """``../shared`` (golden fixtures, weights, data). Missing it is an error, never a skip."""
    assert osp.isdir(osp.join(SHARED, 'fixtures')), (
        f'../shared not found at {SHARED}: the parity tests need it beside the repo '
        '(or set KPT_PLUGIN_SHARED).')
    return SHARED
