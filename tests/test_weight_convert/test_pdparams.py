"""``.pdparams``: the restricted reader, and the ``paddle.save``-compatible writer."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest

from weight_convert.archs import get_arch
from weight_convert.convert import export_pdparams
from weight_convert.errors import MissingWeightsError, WeightsError
from weight_convert.pdparams import STRUCTURED_KEY, read_pdparams
from weight_convert.safe_pickle import safe_load


def test_read_pdparams(random_pdparams):
    state = read_pdparams(random_pdparams)
    assert len(state) == 1342 and 'StructuredToParameterName@@' not in state
    assert state['backbone.stem.conv1.norm._mean'].dtype == np.float32
    assert sum(v.size for k, v in state.items() if not k.endswith(('_mean', '_variance'))) == 1_318_625


def test_missing_file_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        read_pdparams(str(tmp_path / 'nope.pdparams'))
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, WeightsError)


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


def test_not_a_state_dict(tmp_path):
    (tmp_path / 'list.pdparams').write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(WeightsError, match='expected a paddle state dict'):
        read_pdparams(str(tmp_path / 'list.pdparams'))
    (tmp_path / 'str.pdparams').write_bytes(pickle.dumps({'a': 'text'}))
    with pytest.raises(WeightsError, match="entry 'a' is a str"):
        read_pdparams(str(tmp_path / 'str.pdparams'))


def test_pdparams_layout_matches_paddle_save(shared_dir, converted, tmp_path):
    """Same keys, order, framework-name table and numpy arrays as a real paddle.save of TinyPose."""
    pd = str(tmp_path / 'x.pdparams')
    export_pdparams(converted['ir', '256x192'], pd)
    with open(pd, 'rb') as f:
        data = f.read()
    assert data[:2] == b'\x80\x04'  # pickle protocol 4, like paddle.save
    assert b'numpy.core.multiarray' in data and b'numpy._core' not in data  # loadable by numpy 1.x and 2.x
    ours = pickle.loads(data)  # noqa: S301 - our own file
    ref = safe_load(osp.join(shared_dir, 'fixtures/random/128x96_randomized.pdparams'))  # numbered from 0
    assert list(ours) == list(ref)
    assert ours[STRUCTURED_KEY] == ref[STRUCTURED_KEY]
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == ref[k].shape
               for k, v in ours.items() if k != STRUCTURED_KEY)
    assert get_arch('pp_tinypose_128x96').slots.paddle_framework_names()['final_conv.bias'] == 'conv2d_268.b_0'
    assert set(read_pdparams(pd)) == set(ref) - {STRUCTURED_KEY}
