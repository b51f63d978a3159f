"""Device strings: syntax, aliases, default, and clear errors for devices that are not there (torch mocked)."""
import sys

import pytest
import torch

from kpt_plugin.inference.device import DeviceError, parse_device


@pytest.mark.parametrize('spec,expected', [('cpu', 'cpu'), ('CPU', 'cpu'), (' cpu ', 'cpu'), ('cpu:0', 'cpu'),
                                           (torch.device('cpu'), 'cpu')])
def test_cpu_forms(spec, expected):
    assert parse_device(spec) == expected


def _fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: count > 0)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: count)
    monkeypatch.setattr(torch.version, 'cuda', '12.4')


@pytest.mark.parametrize('spec,expected', [('cuda', 'cuda'), ('cuda:1', 'cuda:1'), ('gpu', 'cuda'), ('GPU:0', 'cuda:0'),
                                           ('gpu:1', 'cuda:1')])
def test_cuda_and_paddlex_gpu_alias(monkeypatch, spec, expected):
    _fake_gpus(monkeypatch, 2)
    assert parse_device(spec) == expected


def test_cuda_index_out_of_range_names_count(monkeypatch):
    _fake_gpus(monkeypatch, 1)
    with pytest.raises(DeviceError, match=r'cuda:1 requested, 1 GPU visible'):
        parse_device('cuda:1')
    with pytest.raises(DeviceError, match=r'gpu:3 requested, 1 GPU visible'):
        parse_device('gpu:3')


def test_cuda_on_cpu_only_build(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.version, 'cuda', None)
    with pytest.raises(DeviceError, match=r'cuda requested but this PyTorch build has no CUDA support'):
        parse_device('cuda')


def test_cuda_build_without_visible_gpu(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    with pytest.raises(DeviceError, match=r"cuda:0 requested but no GPU is visible \(CUDA_VISIBLE_DEVICES=''\)"):
        parse_device('cuda:0')


def test_npu_without_torch_npu(monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch_npu', None)  # makes `import torch_npu` raise ImportError
    with pytest.raises(DeviceError, match=r'^npu:0 requested but torch_npu is not installed'):
        parse_device('npu:0')
    with pytest.raises(DeviceError, match=r'^npu requested but torch_npu is not installed'):
        parse_device('npu')


@pytest.mark.parametrize('bad', ['cuda:', 'cuda:x', 'tpu', 'gpu0', 'cuda:-1', '0', 'cpu:1'])
def test_malformed(bad):
    with pytest.raises(DeviceError, match=repr(bad) if bad != 'cpu:1' else 'only one CPU'):
        parse_device(bad)


def test_non_string_rejected():
    with pytest.raises(DeviceError, match='device must be a string'):
        parse_device(0)


def test_default_follows_mmengine(monkeypatch):
    import mmengine.device

    from kpt_plugin.inference import device
    assert device.default_device() == mmengine.device.get_device()  # this machine's answer, both ways
    present = {'npu', 'cuda'}
    monkeypatch.setattr(device, '_available', lambda kind: kind in present)
    assert parse_device(None) == 'npu'  # mmengine's order: npu before cuda
    assert parse_device('') == 'npu'
    present = {'mps'}
    assert parse_device(None) == 'mps'
    present = set()
    assert parse_device(None) == 'cpu'
