"""The format registry: detection of files and directories, and dispatch."""
import os.path as osp
import pickle
import shutil

import pytest

from weight_convert.errors import MissingWeightsError, WeightsError
from weight_convert.formats import FORMATS, detect, read_any

from ._helpers import IR, NCNN


def test_every_format_has_a_reader():
    assert set(FORMATS) == {'pdparams', 'pth', 'paddle_pir', 'paddle_legacy', 'openvino', 'ncnn'}


def test_detect_files_and_dirs(shared_dir):
    ir = osp.join(shared_dir, IR, '128x96')
    assert detect(ir)['format'] == 'openvino' and detect(ir)['main_file'] == osp.join(ir, 'model.bin')
    assert detect(osp.join(ir, 'model.bin'))['format'] == 'openvino'
    assert detect(osp.join(shared_dir, NCNN, 'tinypose_128x96.bin'))['format'] == 'ncnn'
    pir = osp.join(shared_dir, 'fixtures/random/128x96_infer')
    assert detect(osp.join(pir, 'model.pdiparams'))['files'] == (osp.join(pir, 'model.json'),
                                                                 osp.join(pir, 'model.pdiparams'))


def test_unpacked_archive_with_one_top_folder(shared_dir, tmp_path):
    shutil.copytree(osp.join(shared_dir, IR, '128x96'), tmp_path / 'tinypose_128x96')
    assert detect(str(tmp_path))['files'][0] == str(tmp_path / 'tinypose_128x96' / 'model.xml')


def test_missing_source(tmp_path):
    with pytest.raises(MissingWeightsError, match='no such file'):
        read_any(str(tmp_path / 'missing'))


def test_directory_without_model(tmp_path):
    (tmp_path / 'notes.txt').write_text('nothing here')
    with pytest.raises(WeightsError, match='no model found'):
        read_any(str(tmp_path))


def test_directory_with_two_models_asks_which(shared_dir):
    with pytest.raises(WeightsError, match='several models'):
        read_any(osp.join(shared_dir, NCNN))


@pytest.mark.parametrize('name, what', [('x.onnx', 'unsupported weight file'), ('model.json', 'needs both'),
                                        ('t.param', 'ncnn weights t.bin are missing')])
def test_incomplete_or_unknown_files(tmp_path, name, what):
    (tmp_path / name).write_text('7767517\n')
    with pytest.raises(WeightsError, match=what):
        detect(str(tmp_path / name))


def test_unsafe_pickle_refused_without_running(tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    data = pickle.dumps({'backbone.x': Payload()}, protocol=2)
    bad = tmp_path / 'evil.pdparams'
    bad.write_bytes(data)
    with pytest.raises(ValueError, match='refused'):
        read_any(str(bad))
    assert not marker.exists()
    # the payload is live: a plain unpickler would have run it
    pickle.loads(data)
    assert marker.exists()
