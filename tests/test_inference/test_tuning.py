"""backend='auto' / use_hpip: measured choice per machine, cached in $KPT_PLUGIN_HOME (kpt_plugin.inference.runtime
.tuning), shown in repr and the log, and ``kpt-plugin tune``."""
import json
import logging
import os.path as osp
import threading

import numpy as np
import pytest

import kpt_plugin
from kpt_plugin.errors import BackendError
from kpt_plugin.inference.runtime import tuning
from kpt_plugin_cli import main


def _ref(batch):
    return batch[:, :1, ::4, ::4] * 2.0


class _Fake:
    """A stand-in candidate: the reference output plus ``error``."""

    def __init__(self, error=0.0):
        self.error, self.calls = error, 0

    def __call__(self, batch):
        self.calls += 1
        return _ref(batch) + self.error


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home'


def _auto(times, errors=None, threads=1, built=None):
    """An AutoBackend over fake candidates whose measured ms are ``times`` (label -> ms)."""
    errors = errors or {}
    built = {} if built is None else built
    pairs = [tuple(k.split('/')) for k in times]

    def factory(backend, plan):
        built[backend, plan] = _Fake(errors.get(f'{backend}/{plan}', 0.0))
        return built[backend, plan]

    return tuning.AutoBackend(factory, _ref, 'arch', (8, 16), threads=threads, candidates=pairs)


def _stub_measure(monkeypatch, times, gate=None):
    calls = []

    def measure(runners, batch, **kw):
        if gate is not None:
            assert gate.wait(60), 'the test never opened the gate'
        calls.append(sorted(runners))
        return {k: times[k] for k in runners}

    monkeypatch.setattr(tuning, 'measure', measure)
    return calls


def test_cache_written_reused_and_keyed_by_cpu_and_threads(home, monkeypatch, caplog):
    times = {'onnxruntime/onnxruntime': 3.0, 'torch/torch': 5.0}
    calls = _stub_measure(monkeypatch, times)
    x = np.ones((1, 3, 16, 8), np.float32)
    with caplog.at_level(logging.INFO, logger='kpt_plugin'):
        out = _auto(times)(x)
    np.testing.assert_array_equal(out, _ref(x))
    assert len(calls) == 1 and 'onnxruntime/onnxruntime, measured' in caplog.text
    data = json.loads((home / 'tuning.json').read_text())
    assert data['format'] == 'kpt_plugin-tuning'
    (key, entry), = data['entries'].items()
    assert entry['winner'] == 'onnxruntime/onnxruntime' and entry['ms'] == times
    assert tuning.cpu_model() in key and '|t1|' in key and '|b1|' in key

    # a new predictor on the same machine reuses it: nothing measured, nothing but the winner built
    caplog.clear()
    built = {}
    with caplog.at_level(logging.INFO, logger='kpt_plugin'):
        auto = _auto(times, built=built)
        auto(np.ones((3, 3, 16, 8), np.float32))  # 3 crops -> bucket 2 (new) ...
        auto(x)  # ... bucket 1 (cached)
    assert len(calls) == 2 and 'onnxruntime/onnxruntime, cached' in caplog.text
    assert auto.describe() == 'b1=onnxruntime/onnxruntime, b2=onnxruntime/onnxruntime'

    # another thread count or another CPU model is another key: measured again
    _auto(times, threads=2)(x)
    assert len(calls) == 3
    monkeypatch.setattr(tuning, 'cpu_model', lambda: 'Other CPU 9000')
    _auto(times)(x)
    assert len(calls) == 4
    assert len(json.loads((home / 'tuning.json').read_text())['entries']) == 4


def test_cpu_model_tells_generations_apart_when_the_name_does_not(monkeypatch):
    # a VM's generic name on two generations (Zen 3 is family 25, model 1; Zen 5 family 26)
    info = 'processor\t: {p}\ncpu family\t: {f}\nmodel\t\t: {m}\nmodel name\t: AMD EPYC\nstepping\t: 1\n\n'
    monkeypatch.setattr(tuning, '_cpuinfo', lambda: info.format(p=0, f=25, m=1) + info.format(p=1, f=99, m=9))
    zen3 = tuning.cpu_model()
    assert zen3 == 'AMD EPYC (cpu family 25, model 1, stepping 1)'  # the first processor's block
    key3 = tuning.tuning_key('arch', (8, 16), False, 1, 2)
    monkeypatch.setattr(tuning, '_cpuinfo', lambda: info.format(p=0, f=26, m=2))
    assert tuning.cpu_model() != zen3 and tuning.tuning_key('arch', (8, 16), False, 1, 2) != key3
    monkeypatch.setattr(tuning, '_cpuinfo', lambda: 'model name\t: Some CPU\n')
    assert tuning.cpu_model() == 'Some CPU'  # no ids listed: the name alone


def test_first_candidate_wins_ties_within_the_prior_margin(home, monkeypatch):
    assert tuning.rank({'a': 3.0, 'b': 3.1, 'c': 2.0}) == ['c', 'a', 'b']  # no prior: fastest first
    margin = tuning.PRIOR_MARGIN
    assert tuning.rank({'a': 3.0, 'b': 3.0 * (1 + margin) * 0.999}, prior='b') == ['b', 'a']
    assert tuning.rank({'a': 3.0, 'b': 3.0 * (1 + margin) * 1.001}, prior='b') == ['a', 'b']
    # in a tuning: the first candidate (our graph on OpenVINO by default) is the prior
    tie = {'openvino/openvino': 3.0 * (1 + margin / 2), 'onnxruntime/onnxruntime': 3.0}
    _stub_measure(monkeypatch, tie)
    x = np.ones((1, 3, 16, 8), np.float32)
    auto = _auto(tie)
    auto(x)
    assert auto.describe() == 'b1=openvino/openvino'
    clear = {'openvino/openvino': 3.0 * (1 + 2 * margin), 'onnxruntime/onnxruntime': 3.0}
    _stub_measure(monkeypatch, clear)
    auto = _auto(clear, threads=2)  # another key: measured again
    auto(x)
    assert auto.describe() == 'b1=onnxruntime/onnxruntime'


def test_fastest_candidate_without_fp32_parity_is_skipped(home, monkeypatch, caplog):
    times = {'openvino/openvino': 1.0, 'onnxruntime/onnxruntime': 2.0}
    _stub_measure(monkeypatch, times)
    auto = _auto(times, errors={'openvino/openvino': 1e-3})
    with caplog.at_level(logging.WARNING, logger='kpt_plugin'):
        auto(np.ones((1, 3, 16, 8), np.float32))
    assert auto.choices[1] == ('onnxruntime', 'onnxruntime')
    assert 'openvino/openvino is fastest but its heatmaps differ' in caplog.text


@pytest.mark.parametrize('content', ['{"entries": [1, 2', '{"format": "someone-else", "entries": {}}', '[]'])
def test_corrupt_or_foreign_cache_is_ignored_and_rebuilt(home, monkeypatch, caplog, content):
    times = {'onnxruntime/onnxruntime': 3.0, 'torch/torch': 5.0}
    calls = _stub_measure(monkeypatch, times)
    home.mkdir(parents=True)
    (home / 'tuning.json').write_text(content)
    with caplog.at_level(logging.WARNING, logger='kpt_plugin'):
        _auto(times)(np.ones((1, 3, 16, 8), np.float32))
    assert 'ignoring the backend tuning cache' in caplog.text and len(calls) == 1
    data = json.loads((home / 'tuning.json').read_text())
    assert data['format'] == 'kpt_plugin-tuning' and len(data['entries']) == 1


def test_measure_interleaves_blocks_and_takes_the_median():
    order = []
    runners = {'a': lambda b: order.append('a'), 'b': lambda b: order.append('b')}
    ms = tuning.measure(runners, None, budget_s=0.0, warmup=1, block=3, min_rounds=2, max_rounds=2)
    assert order == ['a', 'b'] + (['a'] * 3 + ['b'] * 3) * 2  # warmup, then blocks A A A B B B ...
    assert set(ms) == {'a', 'b'} and all(v >= 0 for v in ms.values())


def test_auto_predictor_repr_and_predict(enhance_ckpt, shared_dir, home, monkeypatch):
    """use_hpip=True on cpu: the first batch of a bucket answers on the eager torch net while the bucket is tuned
    in the background; then the winner runs; the choice is in repr; keypoints equal torch's throughout."""
    times = {'openvino/openvino': 4.0, 'openvino/onnxruntime': 3.0, 'onnxruntime/onnxruntime': 2.0,
             'onnxruntime/openvino': 5.0, 'torch/torch': 9.0}
    gate = threading.Event()
    calls = _stub_measure(monkeypatch, times, gate)
    monkeypatch.setattr(tuning, 'CANDIDATES', tuple(tuple(k.split('/')) for k in times))
    m = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=enhance_ckpt(), device='cpu', use_hpip=True)
    assert m.backend == 'auto' and "choice='untuned'" in repr(m)
    img = osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000196141.jpg')
    box = [[100, 50, 300, 400]]
    first = next(m.predict(img, bboxes=box))  # answered by torch; the tuning waits for more eager time (rent)
    assert "choice='untuned'" in repr(m) and not calls and m.runner._thread is None
    assert m.runner._tunings.deferred() == [1]
    m.runner.TUNE_AFTER_S = 0.  # the rent is paid: the next call starts the tuning behind its answer
    again = next(m.predict(img, bboxes=box))  # answered while the tuning waits at the gate
    assert "choice='untuned'" in repr(m) and not calls
    assert any(t.name == tuning.AutoBackend.THREAD_NAME for t in threading.enumerate())
    gate.set()
    m.wait()  # starts and finishes the tuning (KeypointPredictor.wait)
    assert len(calls) == 1 and "choice='b1=onnxruntime/onnxruntime'" in repr(m)
    a = next(m.predict(img, bboxes=box))
    assert m.runner.onnx_path.startswith(str(home)) and '-b1-' in m.runner.onnx_path
    # the torch candidate folded its own copy: later exports (other buckets) still see the unfolded model
    import torch
    assert any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.pose_model.modules())
    b = next(kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=enhance_ckpt(), device='cpu').predict(
        img, bboxes=box))
    for got in (first, again, a):
        np.testing.assert_allclose(got['kpts'][0]['keypoints'], b['kpts'][0]['keypoints'], atol=0.01)
    # a new predictor in the same home starts on the cached choice: no tuning
    m2 = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=enhance_ckpt(), device='cpu', use_hpip=True)
    next(m2.predict(img, bboxes=box))
    assert "choice='b1=onnxruntime/onnxruntime'" in repr(m2) and m2.runner._thread is None and len(calls) == 1


def test_background_tuning_error_reaches_the_caller(home, monkeypatch):
    """A tuning that fails in the background is raised by the next call (in the caller's thread)."""
    times = {'onnxruntime/onnxruntime': 3.0}
    _stub_measure(monkeypatch, times)
    auto = tuning.AutoBackend(lambda b, p: _Fake(error=1.0), _ref, 'arch', (8, 16),
                              candidates=[('onnxruntime', 'onnxruntime')], fallback=_ref)
    x = np.ones((1, 3, 16, 8), np.float32)
    np.testing.assert_array_equal(auto(x), _ref(x))  # the fallback answers
    with pytest.raises(BackendError, match='no candidate passed the parity check'):
        auto.wait()


def test_tune_cli_real_measurement(enhance_ckpt, shared_dir, home, capsys):
    """One real tuning (every installed candidate, batch 1): the table, the cache, a winner at fp32 parity."""
    assert main(['tune', '--model', 'PP-TinyPose_128x96', '--weights', enhance_ckpt(), '--batch-sizes', '1',
                 '--threads', '1']) == 0
    out = capsys.readouterr().out
    assert 'torch/torch' in out and 'onnxruntime/onnxruntime' in out and '| 1 |' in out
    (entry, ) = json.loads((home / 'tuning.json').read_text())['entries'].values()
    assert set(entry['ms']) == {'/'.join(c) for c in tuning.available(tuning.CANDIDATES)}
    assert entry['max_abs_diff'][entry['winner']] <= tuning.PARITY_ATOL and f'**{entry["winner"]}**' in out
    # the tuned predictor matches Paddle's heatmaps on the real fixture crops
    m = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=enhance_ckpt(), device='cpu', backend='auto',
                                hpi_config=dict(backend_config=dict(cpu_num_threads=1)))
    crops = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8.npy'))[:1]
    paddle = np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8_heatmap_paddle.npy'))[:1]
    assert np.abs(m.heatmaps(crops) - paddle).max() <= 1e-4
    assert m.runner.describe() == f'b1={entry["winner"]}'


def test_tune_cli_detector(shared_dir, home, capsys):
    """``kpt-plugin tune`` on a detector: OpenVINO vs ONNX Runtime for use_hpip pipelines' detector, cached, and
    a detector on ``use_auto`` then starts on the cached winner (no tuning thread)."""
    import cv2
    weights = osp.join(shared_dir, 'fixtures', 'picodet', 'picodet_s_192_lcnet_pedestrian_folded.pdparams')
    assert main(['tune', '--model', 'PicoDet-S_pedestrian_192', '--weights', weights, '--batch-sizes', '1',
                 '--threads', '1']) == 0
    out = capsys.readouterr().out
    assert 'openvino/ours' in out and 'onnxruntime/ours' in out and '| 1 |' in out
    (key, entry), = json.loads((home / 'tuning.json').read_text())['entries'].items()
    assert 'picodet' in key and entry['winner'] in ('openvino/ours', 'onnxruntime/ours')
    det = kpt_plugin.create_model('PicoDet-S_pedestrian_192', model_dir=weights, device='cpu').use_auto(threads=1)
    det.detect([cv2.imread(osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000196141.jpg'))])
    assert det.tuning.describe() == f'b1={entry["winner"]}' and det.tuning._thread is None
    assert main(['tune', '--model', 'PicoDet-S_pedestrian_192', '--weights', weights, '--flip']) == 2
    assert 'a detector has no flip test' in capsys.readouterr().err
