"""``.pdparams`` -> MMPose checkpoint (the reference conversion path)."""
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import kpt_plugin  # noqa: F401
from weight_convert.convert import WeightsMismatchError, config_path, convert
from weight_convert.pdparams import read_pdparams

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def random_pdparams(shared_dir):
    return osp.join(shared_dir, 'fixtures', 'random', '128x96_randomized.pdparams')


def test_read_pdparams(random_pdparams):
    state = read_pdparams(random_pdparams)
    assert len(state) == 1342 and 'StructuredToParameterName@@' not in state
    assert state['backbone.stem.conv1.norm._mean'].dtype == np.float32
    assert sum(v.size for k, v in state.items() if not k.endswith(('_mean', '_variance'))) == 1_318_625


def test_cli_convert_and_init_model_loads_without_missing_keys(random_pdparams, tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    from mmpose.apis import init_model
    out = tmp_path / 'tinypose.pth'
    proc = subprocess.run([sys.executable, '-m', 'kpt_plugin.cli', 'convert', random_pdparams, '-o', str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ck = _load_checkpoint(str(out), map_location='cpu')
    assert ck['meta']['source_format'] == 'pdparams' and ck['meta']['arch'] == 'PP-TinyPose_128x96'
    assert len(ck['meta']['source_sha256']) == 64
    model = init_model(config_path('PP-TinyPose_128x96'), None, device='cpu')
    missing, unexpected = model.load_state_dict(ck['state_dict'], strict=False)
    assert not missing and not unexpected
    # num_batches_tracked come from the model, everything else from the file
    ref = read_pdparams(random_pdparams)
    assert torch.equal(ck['state_dict']['head.final_layer.weight'], torch.from_numpy(ref['final_conv.weight']))
    assert torch.equal(ck['state_dict']['backbone.stem.conv1.bn.running_var'],
                       torch.from_numpy(ref['backbone.stem.conv1.norm._variance']))


def test_console_script_is_installed():
    exe = shutil.which('kpt-plugin', path=osp.dirname(sys.executable))
    assert exe, 'kpt-plugin console script missing: run install.sh'
    proc = subprocess.run([exe, 'convert', '--help'], capture_output=True, text=True)
    assert proc.returncode == 0 and 'pdparams' in proc.stdout


def _write_pdparams(path, state):
    with open(path, 'wb') as f:
        pickle.dump(dict(state, **{'StructuredToParameterName@@': {k: k for k in state}}), f, protocol=2)


def test_mismatched_weights_list_every_problem(random_pdparams, tmp_path):
    state = read_pdparams(random_pdparams)
    state.pop('backbone.stem.conv1.conv.weight')
    state['neck.extra.weight'] = np.zeros(3, np.float32)
    state['final_conv.weight'] = np.zeros((14, 40, 1, 1), np.float32)
    bad = tmp_path / 'bad.pdparams'
    _write_pdparams(bad, state)
    with pytest.raises(WeightsMismatchError) as e:
        convert(str(bad), str(tmp_path / 'out.pth'))
    msg = str(e.value)
    assert 'neck.extra.weight' in msg and 'backbone.stem.conv1.conv.weight' in msg
    assert 'head.final_layer.weight: (14, 40, 1, 1)' in msg
    assert not (tmp_path / 'out.pth').exists()


def test_cli_error_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'kpt_plugin.cli', 'convert', str(tmp_path / 'nope.pdparams'),
                           '-o', str(tmp_path / 'o.pth')], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'nope.pdparams' in proc.stderr and 'Traceback' not in proc.stderr


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker, ))


def test_malicious_pdparams_is_refused_before_running(tmp_path):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pdparams'
    with open(evil, 'wb') as f:
        pickle.dump({'backbone.x': _Payload(str(marker))}, f)
    with pytest.raises(ValueError, match='refused to unpickle global'):
        read_pdparams(str(evil))
    assert not marker.exists()


def test_truncated_pdparams(random_pdparams, tmp_path):
    cut = tmp_path / 'cut.pdparams'
    with open(random_pdparams, 'rb') as f:
        cut.write_bytes(f.read()[:100000])
    with pytest.raises(ValueError, match='truncated'):
        read_pdparams(str(cut))
