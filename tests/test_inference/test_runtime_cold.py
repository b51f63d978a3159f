"""Cold start of the runtimes: torch traces a shape only once it is frequent; the graph backends answer on the torch
net until a bucket's eager time has paid for its export or load, which then runs in one background thread
(docs/inference.md)."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def ckpt(enhance_ckpt):
    return enhance_ckpt('128x96')


@pytest.fixture(scope='module')
def pose(ckpt):
    from kpt_plugin.inference.nets import build_pose_model
    from kpt_plugin.zoo import get_config_path
    return build_pose_model(get_config_path('PP-TinyPose_128x96'), ckpt)


@pytest.fixture(scope='module')
def crops(shared_dir):
    return np.load(osp.join(shared_dir, 'fixtures', 'enhance', '128x96_real_crops_b8.npy'))[:3]


@pytest.fixture(scope='module')
def reference(pose, crops):
    """Heatmaps of the unfolded eager MMPose network (the fp32 model every backend must match)."""
    import copy
    from kpt_plugin.inference.nets import HeatmapNet
    with torch.no_grad():
        return HeatmapNet(copy.deepcopy(pose)).eval()(torch.from_numpy(crops)).numpy()


def _ort(pose, ckpt, **kwargs):
    import copy
    from kpt_plugin.inference.runtime.onnxruntime import OrtBackend
    return OrtBackend(device='cpu', threads=1, pose_model=copy.deepcopy(pose), checkpoint=ckpt,
                      input_size=(96, 128), **kwargs)


def _no_fallback(*args):
    raise AssertionError('ran the torch stand-in although the graph is in the cache')


@pytest.mark.parametrize('trace_after', [1, 3])
def test_torch_traces_a_shape_on_its_nth_batch(pose, crops, reference, trace_after):
    import copy
    from kpt_plugin.inference.runtime.torch import TorchBackend
    backend = TorchBackend(copy.deepcopy(pose), 'cpu', trace_after=trace_after)
    key = tuple(crops.shape)
    for i in range(trace_after):
        assert not isinstance(backend._traced.get(key), torch.jit.ScriptModule), f'traced before batch {i + 1}'
        out = backend(crops)
        assert np.abs(out - reference).max() <= 1e-4
    assert isinstance(backend._traced[key], torch.jit.ScriptModule)
    assert np.abs(backend(crops) - reference).max() <= 1e-4
    # another shape starts its own count
    backend(crops[:1])
    assert isinstance(backend._traced[(1, ) + key[1:]], torch.jit.ScriptModule) == (trace_after == 1)


def test_default_torch_backend_stays_eager_for_a_few_batches(pose, crops):
    import copy
    from kpt_plugin.inference.runtime.torch import TorchBackend
    backend = TorchBackend(copy.deepcopy(pose), 'cpu')
    assert backend.trace_after == TorchBackend.TRACE_AFTER > 3
    for _ in range(3):
        backend(crops[:1])
    assert backend._traced[(1, 3, 128, 96)] == 3


def test_rent_or_buy_queues_a_key_once_its_slow_path_has_cost_enough():
    from kpt_plugin.inference.runtime.background import BackgroundQueue
    done = []
    queue = BackgroundQueue(done.append, 'kpt_plugin-export', 'test %d')
    assert not queue.rent(8, 0.4, after_s=1.0) and not queue.rent(8, 0.5, after_s=1.0)
    assert queue.deferred() == [8] and queue.thread is None
    assert queue.rent(8, 0.2, after_s=1.0)  # 1.1 s >= 1.0 s: bought
    assert not queue.rent(2, 0.1, after_s=1.0)
    queue.thread.join()
    assert done == [8] and queue.deferred() == [2]
    queue.wait()  # starts what is deferred
    assert done == [8, 2] and queue.deferred() == []
    assert queue.rent(4, 0., after_s=0.)  # after_s=0: at once


def test_cold_cache_serves_torch_then_the_exported_graphs(pose, ckpt, crops, reference, tmp_path, monkeypatch):
    from kpt_plugin.inference.onnx_export import cached_onnx_path
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    backend = _ort(pose, ckpt)
    cold = backend(crops)  # 3 = 2 + 1: neither graph exists, both parts run on the torch stand-in
    assert backend._fallback is not None and np.abs(cold - reference).max() <= 1e-4
    # one short call has not paid for seconds of exports: nothing runs behind it
    assert backend._thread is None and sorted(backend._exports.deferred()) == [1, 2]
    backend.wait()  # starts the deferred exports
    assert sorted(backend.sessions) == [1, 2]
    for size in (1, 2):
        assert osp.isfile(cached_onnx_path(ckpt, (96, 128), batch_size=size) + '.sha256')
    backend._fallback = _no_fallback
    warm = backend(crops)
    assert np.abs(warm - reference).max() <= 1e-4
    assert backend.onnx_path.startswith(str(tmp_path / 'home'))

    # a new backend on the warm cache answers on torch too until its eager time pays for loading the cached graphs
    again = _ort(pose, ckpt)
    assert np.abs(again(crops) - reference).max() <= 1e-4 and again.sessions == {}
    again.LOAD_AFTER_S = 0.  # paid: the next call loads them behind its answer (no export: they are cached)
    from kpt_plugin.inference import onnx_export
    monkeypatch.setattr(onnx_export, 'export_onnx', _no_fallback)
    again(crops)
    again.wait()
    again._fallback = _no_fallback
    assert np.abs(again(crops) - reference).max() <= 1e-4 and sorted(again.sessions) == [1, 2]


def test_partly_warm_cache_mixes_graphs_and_torch(pose, ckpt, crops, reference, tmp_path, monkeypatch):
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    first = _ort(pose, ckpt)
    first(crops[:2])
    first.wait()  # only the batch-2 graph exists now
    backend = _ort(pose, ckpt)
    backend.LOAD_AFTER_S = 0.
    backend(crops)  # all on torch: the batch-2 graph loads behind it, batch 1 waits for more eager time
    backend._exports.thread.join()
    assert list(backend.sessions) == [2] and backend._exports.deferred() == [1]
    out = backend(crops)  # 2 from the loaded graph, 1 on torch
    assert np.abs(out - reference).max() <= 1e-4
    backend.wait()
    assert sorted(backend.sessions) == [1, 2]


def test_background_export_off_exports_before_answering(pose, ckpt, crops, reference, tmp_path, monkeypatch):
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    backend = _ort(pose, ckpt)
    backend.background_export = False
    out = backend(crops[:2])
    assert backend._thread is None and backend._fallback is None and list(backend.sessions) == [2]
    assert np.abs(out - reference[:2]).max() <= 1e-4


def test_a_failed_background_export_is_raised_in_the_callers_thread(pose, ckpt, crops, tmp_path, monkeypatch):
    from kpt_plugin.inference import onnx_export
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))

    def broken(*args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(onnx_export, 'cached_onnx', broken)
    backend = _ort(pose, ckpt)
    backend.EXPORT_AFTER_S = 0.  # every call starts the export behind its answer
    backend(crops[:1])  # answered by torch; the export fails behind it
    with pytest.raises(RuntimeError, match='disk full'):
        backend.wait()
    backend(crops[:1])  # the error was reported once; the next call tries again (and fails again, behind)
    backend._thread.join()
    with pytest.raises(RuntimeError, match='disk full'):
        backend(crops[:1])


@pytest.mark.parametrize('export_after_s', [None, 0.])
def test_a_process_exits_only_after_its_export_so_the_next_one_is_warm(ckpt, shared_dir, tmp_path, monkeypatch,
                                                                      export_after_s):
    """In a fresh interpreter: the first predict is answered cold; a process whose eager calls paid for the export
    (here: ``EXPORT_AFTER_S = 0``) leaves a complete cache, a short one (the default) exports nothing."""
    from kpt_plugin.inference.onnx_export import cached_onnx_path
    home = tmp_path / 'home'
    img = osp.join(shared_dir, 'data', 'coco_val2017_mini', '000000196141.jpg')
    code = ('import kpt_plugin\n'
            + ('' if export_after_s is None else 'from kpt_plugin.inference.runtime.graph import GraphBackend\n'
               f'GraphBackend.EXPORT_AFTER_S = {export_after_s}\n')
            + f'm = kpt_plugin.create_model("PP-TinyPose_128x96", model_dir={ckpt!r}, device="cpu", '
            'backend="onnxruntime")\n'
            f'r = next(m.predict({img!r}, bboxes=[[100, 50, 300, 400]]))\n'
            'print(len(r["kpts"]), m.runner._fallback is not None, sorted(m.runner.sessions))\n')
    env = dict(os.environ, KPT_PLUGIN_HOME=str(home), OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=600,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['1', 'True', '[]']  # answered by torch, before any graph existed
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(home))
    path = cached_onnx_path(ckpt, (96, 128), batch_size=1)
    assert osp.isfile(path + '.sha256') == (export_after_s == 0.)
    assert osp.isfile(path) == (export_after_s == 0.)


def test_torch_folds_once_eager_time_has_paid_for_it(pose, crops, reference):
    import copy
    from kpt_plugin.inference.runtime.torch import TorchBackend
    bns = lambda b: sum(isinstance(m, torch.nn.BatchNorm2d) for m in b.net.modules())  # noqa: E731
    late = TorchBackend(copy.deepcopy(pose), 'cpu', fold_after_s=1e9, jit=False)
    assert not late.folded and bns(late) == 268
    assert np.abs(late(crops) - reference).max() <= 1e-4 and not late.folded
    late.fold_after_s = 0.  # the next batch has paid for it
    late(crops)
    assert late.folded and bns(late) == 0
    assert np.abs(late(crops) - reference).max() <= 1e-4
    now = TorchBackend(copy.deepcopy(pose), 'cpu', fold_after_s=0)
    assert now.folded and bns(now) == 0
    traced = TorchBackend(copy.deepcopy(pose), 'cpu', fold_after_s=1e9, trace_after=1)
    assert np.abs(traced(crops) - reference).max() <= 1e-4 and traced.folded  # traced = the folded net
