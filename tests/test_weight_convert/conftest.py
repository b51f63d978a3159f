"""Fixtures shared by the weight-conversion tests: each shared source converted once per session."""
import os.path as osp

import pytest

from ._helpers import IR, NCNN, SIZES


@pytest.fixture(scope='session')
def converted(shared_dir, tmp_path_factory):
    """``{(kind, size): checkpoint path}`` for kind ``ir`` (enhance OpenVINO IR) and ``ncnn`` (2021 ncnn)."""
    from weight_convert.convert import convert
    out = tmp_path_factory.mktemp('ckpt')
    paths = {}
    for size in SIZES:
        paths['ir', size] = str(out / f'ir_{size}.pth')
        convert(osp.join(shared_dir, IR, size), paths['ir', size])
        paths['ncnn', size] = str(out / f'ncnn_{size}.pth')
        convert(osp.join(shared_dir, NCNN, f'tinypose_{size}.param'), paths['ncnn', size])
    return paths


@pytest.fixture(scope='session')
def random_pdparams(shared_dir):
    """The randomised ppdet state dict (a real ``paddle.save`` file, 128x96)."""
    return osp.join(shared_dir, 'fixtures', 'random', '128x96_randomized.pdparams')


@pytest.fixture(scope='session')
def random_framework_tensors(shared_dir):
    """``({framework name: array}, {structured name: array})`` of the randomised 256x192 fixture."""
    from weight_convert.safe_pickle import safe_load
    raw = safe_load(osp.join(shared_dir, 'fixtures/random/256x192_randomized.pdparams'))
    table = raw.pop('StructuredToParameterName@@')
    return {table[k]: v for k, v in raw.items()}, dict(raw)
