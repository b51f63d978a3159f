"""The PP-TinyPose model zoo: the ONE table of released models, and name/weights -> checkpoint resolution.

Everything that needs a config path, an input size, a published AP or an official URL reads it from
:data:`MODELS` (``weight_convert.convert.ARCH_CONFIGS``, ``metafile.yml``, the docs).

Public API (used by ``kpt_plugin.create_model`` / the inference helpers and ``kpt-plugin convert --model``):

* :func:`list_models` -> names;
* :func:`get_model_info` (name) -> :class:`ModelInfo`;
* :func:`get_config_path` (name or arch) -> absolute config path;
* :func:`resolve_checkpoint` (name=None, weights=None) -> ``(config_path, checkpoint_path)``: downloads,
  verifies, converts and caches as needed; ``weights`` may be a ``.pth``, ``.pdparams``, a Paddle inference
  directory, an OpenVINO IR directory/``.xml`` or an ncnn ``.param``;
* :func:`cache_dir` -> ``$KPT_PLUGIN_HOME`` or ``~/.cache/kpt_plugin``;
* :class:`ZooError` (a ``ValueError``) for unknown names, unreachable servers, bad downloads.
"""
import dataclasses
import hashlib
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

__all__ = ['ModelInfo', 'MODELS', 'ARCHS', 'ZooError', 'list_models', 'get_model_info', 'get_config_path',
           'cache_dir', 'download', 'resolve_checkpoint', 'checkpoint_arch', 'render_metafile', 'METAFILE']

#: seconds to wait for a server before declaring the machine offline
NETWORK_TIMEOUT = float(os.environ.get('KPT_PLUGIN_NETWORK_TIMEOUT', 10))

_CFG_128 = 'configs/pp_tinypose/td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py'
_CFG_256 = 'configs/pp_tinypose/td-hm_pp-tinypose_4xb128-420e_aic-coco-256x192.py'
_PDX = 'https://paddle-model-ecology.bj.bcebos.com/paddlex'
_PPDET = 'https://bj.bcebos.com/v1/paddledet/models/keypoint'


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One released PP-TinyPose model.

    Attributes:
        name: zoo name (``PP-TinyPose_128x96`` ...).
        arch: architecture / input-size preset (``PP-TinyPose_128x96`` or ``PP-TinyPose_256x192``).
        variant: ``'enhance'`` (2022-08 release, what PaddleX ships) or ``'2021'`` (original release).
        config: MMPose config, relative to the repo root (or the installed package's ``.mim``).
        input_size: network input ``(w, h)``.
        coco_ap: published COCO val2017 keypoint AP (GT boxes), in percent.
        urls: official download URLs by kind (``pdparams``: ppdet training weights, the default;
            ``paddlex_pdparams``, ``inference`` ...); ``urls[default_source]`` is what resolution fetches.
        sha256: known sha256 of the files in ``urls`` (same keys); missing key = not published/unknown.
        default_source: key of ``urls`` that :func:`resolve_checkpoint` downloads.
        notes: provenance remarks.
    """

    name: str
    arch: str
    variant: str
    config: str
    input_size: tuple
    coco_ap: float
    urls: dict
    sha256: dict = dataclasses.field(default_factory=dict)
    default_source: str = 'pdparams'
    notes: str = ''

    @property
    def heatmap_size(self):
        """Heatmap ``(w, h)`` (input / 4)."""
        return (self.input_size[0] // 4, self.input_size[1] // 4)


# URLs: PaddleDetection configs/keypoint/tiny_pose/README.md (current table = enhance, "历史版本 2021" table)
# and PaddleX docs/module_usage/tutorials/cv_modules/human_keypoint_detection.md. Baidu publishes no checksums;
# the enhance 128x96 deploy-zip digest comes from a third-party provenance record whose internal-file digests
# (infer_cfg.yml, model.pdiparams.info) match ../shared byte for byte.
MODELS = {m.name: m for m in (
    ModelInfo(
        name='PP-TinyPose_128x96', arch='PP-TinyPose_128x96', variant='enhance', config=_CFG_128,
        input_size=(96, 128), coco_ap=58.4,
        urls=dict(
            pdparams=f'{_PPDET}/tinypose_enhance/tinypose_128x96.pdparams',
            inference=f'{_PPDET}/tinypose_enhance/tinypose_128x96.zip',
            paddlex_pdparams=f'{_PDX}/official_pretrained_model/PP-TinyPose_128x96_pretrained.pdparams',
            paddlex_inference=f'{_PDX}/official_inference_model/paddle3.0.0/PP-TinyPose_128x96_infer.tar'),
        sha256=dict(inference='b737aa851a1ce9403950280be5df4bdd9c0e0287dd7ecdaa16f534d9c940015d'),
        notes='2022-08 "enhance" release (PaddleDetection tinypose_enhance = PaddleX PP-TinyPose_128x96).'),
    ModelInfo(
        name='PP-TinyPose_256x192', arch='PP-TinyPose_256x192', variant='enhance', config=_CFG_256,
        input_size=(192, 256), coco_ap=68.3,
        urls=dict(
            pdparams=f'{_PPDET}/tinypose_enhance/tinypose_256x192.pdparams',
            inference=f'{_PPDET}/tinypose_enhance/tinypose_256x192.zip',
            paddlex_pdparams=f'{_PDX}/official_pretrained_model/PP-TinyPose_256x192_pretrained.pdparams',
            paddlex_inference=f'{_PDX}/official_inference_model/paddle3.0.0/PP-TinyPose_256x192_infer.tar'),
        notes='2022-08 "enhance" release (PaddleDetection tinypose_enhance = PaddleX PP-TinyPose_256x192).'),
    ModelInfo(
        name='PP-TinyPose_128x96_2021', arch='PP-TinyPose_128x96', variant='2021', config=_CFG_128,
        input_size=(96, 128), coco_ap=58.1,
        urls=dict(pdparams=f'{_PPDET}/tinypose_128x96.pdparams', inference=f'{_PPDET}/tinypose_128x96.tar'),
        notes='original 2021 release (PaddleDetection README "历史版本 / 2021版本").'),
    ModelInfo(
        name='PP-TinyPose_256x192_2021', arch='PP-TinyPose_256x192', variant='2021', config=_CFG_256,
        input_size=(192, 256), coco_ap=68.8,
        urls=dict(pdparams=f'{_PPDET}/tinypose_256x192.pdparams', inference=f'{_PPDET}/tinypose_256x192.tar'),
        notes='original 2021 release (PaddleDetection README "历史版本 / 2021版本").'),
)}

#: architecture presets (= the enhance entries' names); both share every tensor shape
ARCHS = tuple(sorted({m.arch for m in MODELS.values()}))


class ZooError(ValueError):
    """Unknown model name, unreachable server, or a download that fails verification."""


def list_models():
    """Names of all zoo models."""
    return list(MODELS)


def get_model_info(name):
    """The :class:`ModelInfo` of ``name`` (case-insensitive); :class:`ZooError` listing the names otherwise."""
    if name in MODELS:
        return MODELS[name]
    for key, info in MODELS.items():
        if key.lower() == str(name).lower():
            return info
    raise ZooError(f'unknown model {name!r}; available: {", ".join(MODELS)}')


def _package_roots():
    import kpt_plugin
    pkg = osp.dirname(osp.abspath(kpt_plugin.__file__))
    return (osp.dirname(pkg), osp.join(pkg, '.mim'))


def get_config_path(name):
    """Absolute path of the MMPose config of a zoo name or arch (source tree or installed ``.mim``)."""
    rel = get_model_info(name).config
    for root in _package_roots():
        if osp.isfile(osp.join(root, rel)):
            return osp.join(root, rel)
    raise FileNotFoundError(f'config {rel} not found next to kpt_plugin ({_package_roots()[0]})')


def cache_dir():
    """``$KPT_PLUGIN_HOME`` or ``~/.cache/kpt_plugin`` (created on demand by the writers)."""
    return osp.abspath(osp.expanduser(os.environ.get('KPT_PLUGIN_HOME') or osp.join('~', '.cache', 'kpt_plugin')))


def _sha256(path):
    from weight_convert.convert import sha256sum
    return sha256sum(path)


def _offline_message(url, err):
    return (f'cannot download {url} ({type(err).__name__}: {getattr(err, "reason", err)}). '
            'No network? Download it on a machine with internet, or pass a local file instead: '
            '--weights PATH (Python: weights=PATH) accepts a .pth checkpoint, a .pdparams file, a Paddle '
            'inference directory (model.json/model.pdmodel + model.pdiparams), an OpenVINO IR directory '
            '(model.xml + model.bin) or an ncnn .param (+ .bin).')


def download(url, dst, sha256=None, timeout=None, progress=True):
    """Download ``url`` to ``dst`` atomically, showing progress on stderr; verify ``sha256`` when given.

    Raises:
        ZooError: the server is unreachable (fails within ``timeout`` seconds), or the digest differs.
    """
    from .fileio import atomic_output
    timeout = NETWORK_TIMEOUT if timeout is None else timeout
    with atomic_output(dst) as tmp:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - URLs come from our table
        except (urllib.error.URLError, OSError) as e:
            raise ZooError(_offline_message(url, e)) from None
        total = int(resp.headers.get('Content-Length') or 0) if hasattr(resp, 'headers') else 0
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total or None, unit='B', unit_scale=True, desc=osp.basename(dst), file=sys.stderr,
                       leave=False)
        h = hashlib.sha256()
        with open(tmp, 'wb') as f, resp:
            while True:
                try:
                    block = resp.read(1 << 20)
                except OSError as e:
                    raise ZooError(_offline_message(url, e)) from None
                if not block:
                    break
                f.write(block)
                h.update(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()
        if total and osp.getsize(tmp) != total:
            raise ZooError(f'{url}: download truncated ({osp.getsize(tmp)} of {total} bytes); try again')
        if sha256 and h.hexdigest() != sha256:
            raise ZooError(f'{url}: sha256 {h.hexdigest()} does not match the expected {sha256}; the file is '
                           'corrupt or has changed on the server. Delete it and retry, or pass --weights PATH.')
    return dst


def _extract(archive, dest):
    """Unpack a .tar/.zip into ``dest`` (members confined to ``dest``); returns ``dest``."""
    import tarfile
    import zipfile
    tmp = tempfile.mkdtemp(prefix='.extract-', dir=osp.dirname(dest))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for m in z.namelist():
                    if m.startswith('/') or '..' in m.split('/'):
                        raise ZooError(f'{archive}: unsafe member path {m!r}')
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                for m in t.getmembers():
                    if m.name.startswith('/') or '..' in m.name.split('/') or not (m.isfile() or m.isdir()):
                        raise ZooError(f'{archive}: unsafe member {m.name!r}')
                t.extractall(tmp)  # noqa: S202 - members checked above
        if osp.isdir(dest):
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp)
    return dest


def _source_file(path):
    """The file whose sha256 identifies a weight source (the file itself, or the weights file of a dir)."""
    from weight_convert.formats import detect
    return detect(path)['main_file']


def checkpoint_arch(path):
    """The ``arch`` recorded in a checkpoint's ``meta`` (our converter writes it), else None."""
    import torch
    from kpt_plugin.safe_pickle import TorchCheckpointPickle
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=TorchCheckpointPickle(str(path)))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f'{path}: not a readable checkpoint ({type(e).__name__}: {e})') from None
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return meta.get('arch') if isinstance(meta, dict) else None


def _convert_cached(src, arch, model_name=None, expected_sha256=None):
    """Convert ``src`` into ``cache_dir()/checkpoints`` keyed by the source's sha256; reuse when present."""
    from weight_convert.convert import CONVERTER_VERSION, convert
    main = _source_file(src)
    digest = _sha256(main)
    if expected_sha256 and digest != expected_sha256:
        raise ZooError(f'{main}: sha256 {digest} does not match the expected {expected_sha256}')
    out_dir = osp.join(cache_dir(), 'checkpoints')
    stem = model_name or 'converted'
    size = '' if not arch else '-' + arch.split('_')[-1]
    # the converter version is part of the key: a newer converter re-converts instead of reusing
    out = osp.join(out_dir, f'{stem}-{digest[:16]}{size}-c{CONVERTER_VERSION}.pth')
    if not osp.isfile(out):
        convert(src, out, arch=arch, model=model_name)
    return out


def resolve_checkpoint(name=None, weights=None, progress=True):
    """Config and checkpoint for a zoo name and/or a weights path.

    Args:
        name (str, optional): zoo name; selects the config and, without ``weights``, the official weights
            (downloaded into ``cache_dir()/downloads``, converted into ``cache_dir()/checkpoints``, reused).
        weights (str, optional): local weights in any supported form: ``.pth`` (used as is), ``.pdparams``,
            Paddle inference directory (PIR or legacy), OpenVINO IR (dir or ``.xml``), ncnn (``.param``).
            Non-``.pth`` sources are converted once into the cache, keyed by their sha256.
        progress (bool): show download progress.

    Returns:
        tuple[str, str]: ``(config_path, checkpoint_path)``.

    Raises:
        ZooError: unknown name, no network (raised within ``NETWORK_TIMEOUT`` s, message says how to pass a
            local file), digest mismatch; ValueError/FileNotFoundError for unusable ``weights``.
    """
    if name is None and weights is None:
        raise ZooError(f'give a model name ({", ".join(MODELS)}) or weights=PATH')
    info = get_model_info(name) if name is not None else None
    if weights is not None:
        weights = str(weights)
        if not osp.exists(weights):
            raise FileNotFoundError(f'{weights}: no such file or directory')
        if weights.endswith('.pth') and osp.isfile(weights):
            arch = info.arch if info else checkpoint_arch(weights)
            if arch is None:
                from weight_convert.convert import guess_arch_from_name
                arch = guess_arch_from_name(osp.basename(weights))
            if arch is None:
                raise ZooError(f'{weights}: the checkpoint does not record its input size; pass the model name '
                               f'too ({", ".join(MODELS)})')
            return get_config_path(arch), osp.abspath(weights)
        if info is None:
            from weight_convert.convert import guess_arch_from_name
            from weight_convert.formats import detect
            fmt = detect(weights)['format']
            if fmt == 'pdparams' and guess_arch_from_name(osp.basename(weights)) is None:
                # a training checkpoint holds no input size (both sizes share every tensor shape)
                raise ZooError(f'{weights}: a .pdparams file does not tell its input size; pass the model name '
                               f'too ({", ".join(MODELS)})')
        ckpt = _convert_cached(weights, info.arch if info else None)
        arch = info.arch if info else checkpoint_arch(ckpt)
        return get_config_path(arch), ckpt
    url = info.urls[info.default_source]
    dl = osp.join(cache_dir(), 'downloads', f'{info.name}-{osp.basename(url)}')
    expected = info.sha256.get(info.default_source)
    if not osp.isfile(dl):
        t0 = time.time()
        download(url, dl, sha256=expected, progress=progress)
        if progress:
            print(f'downloaded {url} in {time.time() - t0:.1f} s', file=sys.stderr)
    src = dl
    if dl.endswith(('.tar', '.zip', '.tar.gz', '.tgz')):
        src = dl + '.d'
        if not osp.isdir(src):
            _extract(dl, src)
    try:
        ckpt = _convert_cached(src, info.arch, model_name=info.name)
    except ValueError as e:
        raise ZooError(f'{dl} (downloaded from {url}) could not be converted: {e}\nDelete it to download again.') \
            from None
    return get_config_path(info.arch), ckpt


# ------------------------------------------------------------------------------------- MMPose metafile

#: generated from :data:`MODELS` (``python -m kpt_plugin.zoo`` rewrites it; a test checks it is current)
METAFILE = 'configs/pp_tinypose/metafile.yml'


def render_metafile():
    """The MMPose-style ``metafile.yml`` text for :data:`MODELS` (read by ``mim search kpt_plugin``)."""
    import yaml
    models = []
    for m in MODELS.values():
        models.append({
            'Name': m.name,
            'Config': m.config,
            'In Collection': 'PP-TinyPose',
            'Metadata': {
                'Architecture': ['PPLiteHRNet', 'HeatmapHead', 'PPTinyPoseHeatmap'],
                'Training Data': ['COCO', 'AI Challenger'] + (['PaddleDetection multi-pose scene data']
                                                               if m.variant == 'enhance' else []),
                'Input Size': f'{m.input_size[1]}x{m.input_size[0]}',
                'Variant': m.variant,
            },
            'Results': [{'Dataset': 'COCO', 'Task': 'Body 2D Keypoint', 'Metrics': {'AP': round(m.coco_ap / 100, 3)}}],
            'Weights': m.urls[m.default_source],
        })
    doc = {
        'Collections': [{
            'Name': 'PP-TinyPose',
            'Metadata': {'Architecture': ['PPLiteHRNet', 'HeatmapHead']},
            'Paper': {'Title': 'PP-TinyPose (PaddleDetection)',
                      'URL': 'https://github.com/PaddlePaddle/PaddleDetection/tree/develop/configs/keypoint/tiny_pose'},
            'README': 'docs/weights.md',
        }],
        'Models': models,
    }
    header = ('# Generated from kpt_plugin/zoo.py (python -m kpt_plugin.zoo); do not edit by hand.\n'
              '# AP: published COCO val2017 keypoint AP with GT boxes. Weights are the official Paddle files;\n'
              '# `kpt-plugin convert --model NAME` downloads, converts and caches them as MMPose checkpoints.\n')
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


if __name__ == '__main__':
    root = _package_roots()[0]
    with open(osp.join(root, METAFILE), 'w') as f:
        f.write(render_metafile())
    print(f'wrote {osp.join(root, METAFILE)}')
