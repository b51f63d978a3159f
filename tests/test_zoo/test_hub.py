"""The model zoo: one table, name/weights resolution, download cache, offline message, mim metadata."""
import dataclasses
import hashlib
import os.path as osp
import shutil
import sys
import urllib.error

import pytest

from kpt_plugin import zoo

IR = 'weights/pp_tinypose_enhance_openvino_fp16'


KEYPOINT_MODELS = ['PP-TinyPose_128x96', 'PP-TinyPose_256x192', 'PP-TinyPose_128x96_2021', 'PP-TinyPose_256x192_2021']


def test_table():
    assert zoo.list_models() == KEYPOINT_MODELS + ['PicoDet-S_pedestrian_320', 'PicoDet-S_pedestrian_192']
    assert [n for n in zoo.list_models() if zoo.task_of(n) == 'keypoint'] == KEYPOINT_MODELS
    aps = {n: zoo.get_model_info(n).coco_ap for n in KEYPOINT_MODELS}
    assert aps == {'PP-TinyPose_128x96': 58.4, 'PP-TinyPose_256x192': 68.3, 'PP-TinyPose_128x96_2021': 58.1,
                   'PP-TinyPose_256x192_2021': 68.8}
    for name in zoo.list_models():
        info = zoo.get_model_info(name)
        assert osp.isfile(zoo.get_config_path(name if name in zoo.ARCHS else info.arch))
        assert info.heatmap_size == (info.input_size[0] // 4, info.input_size[1] // 4)
        assert all(u.startswith('https://') for u in info.urls.values())
        assert set(info.sha256) <= set(info.urls)
    # the arch facts live once, in weight_convert.archs; every zoo entry agrees with its arch
    from weight_convert.archs import get_arch
    for name in zoo.list_models():
        info, arch = zoo.get_model_info(name), get_arch(zoo.get_model_info(name).arch)
        assert (info.config, info.input_size) == (arch.config, arch.input_size)
    with pytest.raises(zoo.ZooError, match='PP-TinyPose_256x192_2021'):
        zoo.get_model_info('tinypose')


def test_metafile_is_generated_from_table():
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    with open(osp.join(root, zoo.METAFILE)) as f:
        assert f.read() == zoo.render_metafile(), 'run `python -m kpt_plugin.zoo.registry` to regenerate the metafile'


def test_mim_search_lists_models(tmp_path, monkeypatch):
    """What `mim search kpt_plugin` reads once setup.py has copied model-index.yml into kpt_plugin/.mim."""
    from mim.commands import search
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    mim = tmp_path / '.mim'
    (mim / 'configs' / 'pp_tinypose').mkdir(parents=True)
    shutil.copy(osp.join(root, 'model-index.yml'), mim)
    shutil.copy(osp.join(root, zoo.METAFILE), mim / 'configs' / 'pp_tinypose')
    monkeypatch.setattr(search, 'get_installed_path', lambda package: str(tmp_path))
    found = search.get_model_info('kpt_plugin', to_dict=True)
    assert sorted(found) == sorted(KEYPOINT_MODELS)  # MMPose's metafile lists the keypoint models
    assert found['PP-TinyPose_256x192']['coco/ap'] == 0.683


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('KPT_PLUGIN_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home'


def _local_model(monkeypatch, path, sha256=None):
    """Point PP-TinyPose_128x96 at a local file:// URL (no network in tests)."""
    info = dataclasses.replace(zoo.MODELS['PP-TinyPose_128x96'], urls={'pdparams': 'file://' + str(path)},
                               sha256={'pdparams': sha256} if sha256 else {})
    monkeypatch.setitem(zoo.MODELS, info.name, info)


def test_offline_fails_fast_with_local_file_hint(home, monkeypatch):
    seen = {}

    def no_network(url, timeout=None):
        seen['timeout'] = timeout
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(zoo.hub.urllib.request, 'urlopen', no_network)
    with pytest.raises(zoo.ZooError) as e:
        zoo.resolve_checkpoint('PP-TinyPose_256x192')
    msg = str(e.value)
    assert 'tinypose_256x192.pdparams' in msg and '--weights PATH' in msg and 'ncnn' in msg
    assert seen['timeout'] <= 10
    assert not list((home / 'downloads').glob('*')), 'no partial file may be left behind'


def test_download_convert_cache_reuse(shared_dir, home, monkeypatch):
    src = osp.join(shared_dir, 'fixtures/enhance/128x96_enhance_folded.pdparams')
    digest = hashlib.sha256(open(src, 'rb').read()).hexdigest()
    _local_model(monkeypatch, src, digest)
    cfg, ckpt = zoo.resolve_checkpoint('PP-TinyPose_128x96', progress=False)
    assert cfg.endswith('128x96.py') and osp.isfile(ckpt) and ckpt.startswith(str(home))
    from weight_convert.archs import get_arch
    assert get_arch(zoo.checkpoint_arch(ckpt)).name == 'pp_tinypose_128x96'

    def fail(*a, **k):
        raise AssertionError('cache not reused')

    monkeypatch.setattr(zoo, 'download', fail)
    monkeypatch.setattr(sys.modules['weight_convert.convert'], 'convert', fail)
    assert zoo.resolve_checkpoint('PP-TinyPose_128x96') == (cfg, ckpt)


def test_download_checksum_mismatch(shared_dir, home, monkeypatch):
    _local_model(monkeypatch, osp.join(shared_dir, 'fixtures/enhance/128x96_enhance_folded.pdparams'), '0' * 64)
    with pytest.raises(zoo.ZooError, match='sha256'):
        zoo.resolve_checkpoint('PP-TinyPose_128x96', progress=False)
    assert not list((home / 'downloads').glob('*'))


def test_weights_path_any_format_is_converted_once(shared_dir, home, monkeypatch):
    cfg, ckpt = zoo.resolve_checkpoint(weights=osp.join(shared_dir, IR, '256x192'))
    assert cfg.endswith('256x192.py') and ckpt.startswith(str(home / 'checkpoints'))
    monkeypatch.setattr(sys.modules['weight_convert.convert'], 'convert', lambda *a, **k: pytest.fail('not reused'))
    assert zoo.resolve_checkpoint(weights=osp.join(shared_dir, IR, '256x192')) == (cfg, ckpt)
    # a .pth is used in place; its meta tells the config
    assert zoo.resolve_checkpoint(weights=ckpt) == (cfg, ckpt)
    # a name + weights: the name picks the config
    assert zoo.resolve_checkpoint('PP-TinyPose_256x192_2021', weights=ckpt)[0] == cfg
    with pytest.raises(FileNotFoundError):
        zoo.resolve_checkpoint(weights=str(home / 'nope.pdparams'))


def test_inference_archive_is_unpacked(shared_dir, home, tmp_path, monkeypatch):
    """Deploy packages (zip/tar with a top folder) are unpacked into the cache and converted."""
    import zipfile
    archive = tmp_path / 'tinypose_128x96.zip'
    src = osp.join(shared_dir, 'fixtures/random/128x96_infer')
    with zipfile.ZipFile(archive, 'w') as z:
        for name in ('model.json', 'model.pdiparams', 'infer_cfg.yml'):
            z.write(osp.join(src, name), f'tinypose_128x96/{name}')
    info = dataclasses.replace(zoo.MODELS['PP-TinyPose_128x96'], urls={'inference': 'file://' + str(archive)},
                               sha256={}, default_source='inference')
    monkeypatch.setitem(zoo.MODELS, info.name, info)
    cfg, ckpt = zoo.resolve_checkpoint('PP-TinyPose_128x96', progress=False)
    import torch
    meta = torch.load(ckpt, map_location='cpu', weights_only=True)['meta']
    assert meta['source_format'] == 'paddle_pir' and meta['model'] == 'PP-TinyPose_128x96'


def test_cli_model_offline(home, monkeypatch, capsys):
    from kpt_plugin_cli import main

    def no_network(url, timeout=None):
        raise urllib.error.URLError('unreachable')

    monkeypatch.setattr(zoo.hub.urllib.request, 'urlopen', no_network)
    assert main(['convert', '--model', 'PP-TinyPose_128x96_2021']) == 2
    err = capsys.readouterr().err
    assert 'tinypose_128x96.pdparams' in err and '--weights PATH' in err


def test_offline_create_model_names_model_dir_for_python_users(home, monkeypatch):
    """The issue's case: ``create_model('PP-TinyPose_128x96')`` offline on an empty cache. The hint must be valid
    Python (``model_dir=``; a ``weights=`` keyword would be a TypeError) and name the CLI flag too."""
    import inspect
    import kpt_plugin

    def no_network(url, timeout=None):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(zoo.hub.urllib.request, 'urlopen', no_network)
    with pytest.raises(zoo.ZooError) as e:
        kpt_plugin.create_model('PP-TinyPose_128x96')
    msg = str(e.value)
    assert 'create_model(name, model_dir=PATH)' in msg and '--weights PATH' in msg
    assert 'weights=' not in msg.replace('model_dir=', '')
    assert 'model_dir' in inspect.signature(kpt_plugin.create_model).parameters
    assert not list((home / 'downloads').glob('*'))


def test_checkpoint_arch_reads_meta_without_the_tensors(enhance_ckpt, tmp_path, monkeypatch):
    """The arch check before the model build reads only the pickle (no second full load), and runs nothing."""
    import pickle
    import zipfile
    import weight_convert.io
    path = enhance_ckpt('128x96')

    def no_full_load(*args, **kwargs):
        raise AssertionError('checkpoint_arch loaded the whole checkpoint')

    monkeypatch.setattr(weight_convert.io, 'load_checkpoint', no_full_load)
    assert zoo.hub.checkpoint_arch(path) == 'pp_tinypose_128x96'
    assert zoo.hub._checkpoint_meta(path)['converter'] == 'kpt_plugin.weight_convert'
    # a zip whose pickle names any other global is not unpickled here (the restricted full load decides)
    evil = tmp_path / 'evil.pth'
    with zipfile.ZipFile(evil, 'w') as z:
        z.writestr('evil/data.pkl', b'cos\nsystem\n(S"touch ' + str(tmp_path / 'ran').encode() + b'"\ntR.')
    assert zoo.hub._checkpoint_meta(str(evil)) is None and not (tmp_path / 'ran').exists()
    (tmp_path / 'junk.pth').write_bytes(pickle.dumps({'meta': {'arch': 'x'}}))  # not a zip: legacy path
    assert zoo.hub._checkpoint_meta(str(tmp_path / 'junk.pth')) is None
