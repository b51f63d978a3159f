"""The model zoo table: every released model once (name, architecture, config, input size, AP, URLs, sha256).

Pure data plus lookups, in the style of torchvision's ``Weights`` / timm's pretrained tags: everything that needs a
config path, an input size, a published AP or an official URL reads it from :data:`MODELS` (the hub, the CLI,
``metafile.yml``, the docs).
"""
import dataclasses
import os.path as osp

from weight_convert.archs import get_arch

from ..errors import ZooError

__all__ = ['ModelInfo', 'MODELS', 'ARCHS', 'list_models', 'get_model_info', 'get_config_path', 'task_of',
           'render_metafile', 'METAFILE']

_PDX = 'https://paddle-model-ecology.bj.bcebos.com/paddlex'
_PPDET = 'https://bj.bcebos.com/v1/paddledet/models/keypoint'


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One released model: a PP-TinyPose keypoint model or its PicoDet person detector.

    Attributes:
        name: zoo name (``PP-TinyPose_128x96`` ...).
        arch: architecture (:data:`weight_convert.archs.ARCHS`: ``pp_tinypose_128x96`` ...), which holds the
            config and input size (:attr:`config`, :attr:`input_size`).
        variant: ``'enhance'`` (2022-08 release, what PaddleX ships) or ``'2021'`` (original release).
        coco_ap: published COCO val2017 AP in percent (keypoint AP with GT boxes; person box mAP for detectors),
            None when not published.
        urls: official download URLs by kind (``pdparams``: ppdet training weights, the default;
            ``paddlex_pdparams``, ``inference`` ...); ``urls[default_source]`` is what resolution fetches.
        sha256: known sha256 of the files in ``urls`` (same keys); missing key = not published/unknown.
        default_source: key of ``urls`` that :func:`resolve_checkpoint` downloads.
        notes: provenance remarks.
        task: ``'keypoint'`` or ``'detection'``.
    """

    name: str
    arch: str
    variant: str
    coco_ap: float
    urls: dict
    sha256: dict = dataclasses.field(default_factory=dict)
    default_source: str = 'pdparams'
    notes: str = ''
    task: str = 'keypoint'

    @property
    def config(self):
        """MMPose config, relative to the repo root (or the installed package's ``.mim``)."""
        return get_arch(self.arch).config

    @property
    def input_size(self):
        """Network input ``(w, h)``."""
        return get_arch(self.arch).input_size

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
        name='PP-TinyPose_128x96', arch='pp_tinypose_128x96', variant='enhance', coco_ap=58.4,
        urls=dict(
            pdparams=f'{_PPDET}/tinypose_enhance/tinypose_128x96.pdparams',
            inference=f'{_PPDET}/tinypose_enhance/tinypose_128x96.zip',
            paddlex_pdparams=f'{_PDX}/official_pretrained_model/PP-TinyPose_128x96_pretrained.pdparams',
            paddlex_inference=f'{_PDX}/official_inference_model/paddle3.0.0/PP-TinyPose_128x96_infer.tar'),
        sha256=dict(inference='b737aa851a1ce9403950280be5df4bdd9c0e0287dd7ecdaa16f534d9c940015d'),
        notes='2022-08 "enhance" release (PaddleDetection tinypose_enhance = PaddleX PP-TinyPose_128x96).'),
    ModelInfo(
        name='PP-TinyPose_256x192', arch='pp_tinypose_256x192', variant='enhance', coco_ap=68.3,
        urls=dict(
            pdparams=f'{_PPDET}/tinypose_enhance/tinypose_256x192.pdparams',
            inference=f'{_PPDET}/tinypose_enhance/tinypose_256x192.zip',
            paddlex_pdparams=f'{_PDX}/official_pretrained_model/PP-TinyPose_256x192_pretrained.pdparams',
            paddlex_inference=f'{_PDX}/official_inference_model/paddle3.0.0/PP-TinyPose_256x192_infer.tar'),
        notes='2022-08 "enhance" release (PaddleDetection tinypose_enhance = PaddleX PP-TinyPose_256x192).'),
    ModelInfo(
        name='PP-TinyPose_128x96_2021', arch='pp_tinypose_128x96', variant='2021', coco_ap=58.1,
        urls=dict(pdparams=f'{_PPDET}/tinypose_128x96.pdparams', inference=f'{_PPDET}/tinypose_128x96.tar'),
        notes='original 2021 release (PaddleDetection README "历史版本 / 2021版本").'),
    ModelInfo(
        name='PP-TinyPose_256x192_2021', arch='pp_tinypose_256x192', variant='2021', coco_ap=68.8,
        urls=dict(pdparams=f'{_PPDET}/tinypose_256x192.pdparams', inference=f'{_PPDET}/tinypose_256x192.tar'),
        notes='original 2021 release (PaddleDetection README "历史版本 / 2021版本").'),
) + tuple(
    ModelInfo(
        name=f'PicoDet-S_pedestrian_{s}', arch=f'picodet_s_lcnet_pedestrian_{s}', variant='enhance', coco_ap=None,
        urls=dict(pdparams=f'{_PPDET}/tinypose_enhance/picodet_s_{s}_lcnet_pedestrian.pdparams',
                  inference=f'{_PPDET}/tinypose_enhance/picodet_s_{s}_lcnet_pedestrian.zip'),
        task='detection',
        notes=f'PP-PicoDet-S LCNet pedestrian {s}x{s}, the person detector of the PP-TinyPose 2022 pipeline '
              '(PaddleDetection tiny_pose README; person mAP published only for the 2021 ESNet detectors).')
    for s in (320, 192))}

#: architectures of the zoo models (both PP-TinyPose sizes share every tensor shape)
ARCHS = tuple(sorted({m.arch for m in MODELS.values()}))


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


def task_of(name=None, config=None):
    """``'keypoint'`` or ``'detection'``: of a zoo name, else of the architecture whose config is ``config``."""
    if name is not None:
        return get_model_info(name).task
    from weight_convert.archs import ARCHS as ALL_ARCHS
    base = osp.basename(str(config))
    family = next((a.family for a in ALL_ARCHS.values() if osp.basename(a.config) == base), 'pp_tinypose')
    return 'detection' if family == 'picodet' else 'keypoint'


def _package_roots():
    import kpt_plugin
    pkg = osp.dirname(osp.abspath(kpt_plugin.__file__))
    return (osp.dirname(pkg), osp.join(pkg, '.mim'))


def get_config_path(name):
    """Absolute path of the MMPose config of a zoo name or an architecture (source tree or installed ``.mim``)."""
    try:
        rel = get_model_info(name).config
    except ZooError:
        try:
            rel = get_arch(name).config
        except ValueError:
            raise ZooError(f'unknown model or architecture {name!r}; models: {", ".join(MODELS)}') from None
    for root in _package_roots():
        if osp.isfile(osp.join(root, rel)):
            return osp.join(root, rel)
    raise ZooError(f'config {rel} not found next to kpt_plugin ({_package_roots()[0]})')


# ------------------------------------------------------------------------------------- MMPose metafile

#: generated from :data:`MODELS` (``python -m kpt_plugin.zoo.registry`` rewrites it; a test checks it is current)
METAFILE = 'configs/pp_tinypose/metafile.yml'


def render_metafile():
    """The MMPose-style ``metafile.yml`` text for :data:`MODELS` (read by ``mim search kpt_plugin``)."""
    import yaml
    models = []
    for m in (m for m in MODELS.values() if m.task == 'keypoint'):
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
    header = ('# Generated from kpt_plugin/zoo/registry.py (python -m kpt_plugin.zoo.registry); do not edit by hand.\n'
              '# AP: published COCO val2017 keypoint AP with GT boxes. Weights are the official Paddle files;\n'
              '# `kpt-plugin convert --model NAME` downloads, converts and caches them as MMPose checkpoints.\n')
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


if __name__ == '__main__':
    root = _package_roots()[0]
    with open(osp.join(root, METAFILE), 'w') as f:
        f.write(render_metafile())
    print(f'wrote {osp.join(root, METAFILE)}')
