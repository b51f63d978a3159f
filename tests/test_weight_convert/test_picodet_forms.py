"""PicoDet pedestrian: every weight form converts into one checkpoint that reproduces ppdet's raw outputs.

Forms: (1) the fp16 OpenVINO IR (BN folded), (2) the Paddle 3 inference models (PIR, NMS inside, export constants),
(3) the fixtures' folded ppdet state dicts, (4) what users download - the fp32 real-BN training ``.pdparams`` and
the Paddle 2.x deploy directory - which no file here holds: both are built from (3) with random BN statistics that
compute the same network (``_picodet.unfold_bn``). Goldens: ``fixtures/picodet/{S}/STEM_raw.npz``, ppdet's own
PicoDet with ppdet's semantics (hard-sigmoid slope 0.1666667, ``+1e-9`` in the score), which the IR lost.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from weight_convert.archs import get_arch
from weight_convert.convert import CONVERTER_VERSION, convert
from weight_convert.formats import detect, read_any
from weight_convert.io import sha256sum
from weight_convert.pdparams import read_pdparams

from ._helpers import write_pdparams
from ._picodet import (FIXTURES, IR, PIR, SIZES, STEMS, arch_of, build_detector, fold_bn, folded_pdparams,
                       raw_outputs, unfold_bn, write_deploy_dir)

FORMS = ('ir', 'pir', 'folded', 'real_pdparams', 'deploy_dir')
#: network-input pixels / probabilities (activations reach ~300: float32 summation order alone moves ~1e-3 px)
BOX_TOL, SCORE_TOL = 5e-3, 1e-4


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def sources(shared_dir, tmp_path_factory):
    """``{(form, size): source path}``; the real-BN forms are written under their official names."""
    root = tmp_path_factory.mktemp('picodet_sources')
    out = {}
    for size in SIZES:
        table = get_arch(arch_of(size)).slots
        real = unfold_bn(read_pdparams(folded_pdparams(shared_dir, size)), table, seed=size)
        out['real_pdparams', size] = str(root / f'picodet_s_{size}_lcnet_pedestrian.pdparams')
        write_pdparams(out['real_pdparams', size], real)
        deploy = root / f'deploy_{size}'  # the zip unpacked: one top folder
        (deploy / f'picodet_s_{size}_lcnet_pedestrian').mkdir(parents=True)
        write_deploy_dir(deploy / f'picodet_s_{size}_lcnet_pedestrian', real, table, size)
        out['deploy_dir', size] = str(deploy)
        out['ir', size] = osp.join(shared_dir, IR, str(size))
        out['pir', size] = osp.join(shared_dir, PIR, str(size))
        out['folded', size] = folded_pdparams(shared_dir, size)
    return out


@pytest.fixture(scope='module')
def converted(sources, tmp_path_factory):
    """``{(form, size): (checkpoint path, meta)}``: each form converted once, nothing told but the source."""
    root = tmp_path_factory.mktemp('picodet_ckpt')
    return {key: (str(root / f'{key[0]}_{key[1]}.pth'), convert(src, str(root / f'{key[0]}_{key[1]}.pth')))
            for key, src in sources.items()}


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('form', FORMS)
def test_each_form_reproduces_ppdet(shared_dir, converted, form, size):
    ckpt, meta = converted[form, size]
    assert meta['arch'] == arch_of(size) and meta['family'] == 'picodet' and not meta['arch_inferred']
    for stem in STEMS:
        ref = np.load(osp.join(shared_dir, FIXTURES, str(size), f'{stem}_raw.npz'))
        boxes, scores = raw_outputs(ckpt, np.load(osp.join(shared_dir, FIXTURES, str(size), f'{stem}_input.npy')),
                                    arch_of(size))
        assert boxes.shape == ref['boxes'].shape and scores.shape == ref['scores'].shape
        assert np.abs(boxes - ref['boxes']).max() <= BOX_TOL, stem
        assert np.abs(scores - ref['scores']).max() <= SCORE_TOL, stem


@pytest.mark.parametrize('size', SIZES)
def test_ir_form_has_ppdet_semantics_not_the_irs(shared_dir, converted, size):
    """On the image where ppdet and the OpenVINO runtime differ most, the IR's checkpoint follows ppdet."""
    summary = json.load(open(osp.join(shared_dir, FIXTURES, str(size), 'summary.json')))['images']
    stem = max(summary, key=lambda s: summary[s]['max_abs_diff_scores_vs_ov'])
    ref = np.load(osp.join(shared_dir, FIXTURES, str(size), f'{stem}_raw.npz'))
    _, scores = raw_outputs(converted['ir', size][0],
                            np.load(osp.join(shared_dir, FIXTURES, str(size), f'{stem}_input.npy')), arch_of(size))
    assert np.abs(scores - ref['scores']).max() <= SCORE_TOL < np.abs(scores - ref['ov_scores']).max()
    _, info = read_any(osp.join(shared_dir, IR, str(size)))
    assert info['hardsigmoid'] == [(0.1666259765625, 0.5)] * 2  # read, accepted, not carried: the model's is ppdet's


@pytest.mark.parametrize('size', SIZES)
def test_forms_give_the_same_tensors(shared_dir, converted, size):
    sd = {form: _load(converted[form, size][0])['state_dict'] for form in FORMS}
    # the folded fixture and the Paddle 3 export hold the fp16 IR's values as float32: bit for bit
    for form in ('pir', 'folded'):
        assert list(sd[form]) == list(sd['ir']) and all(torch.equal(sd[form][k], sd['ir'][k]) for k in sd['ir'])
    # both real-BN forms hold one state dict
    assert all(torch.equal(sd['deploy_dir'][k], sd['real_pdparams'][k]) for k in sd['real_pdparams'])
    # ... which, folded again, is the released network (a float64 fold of the float32 tensors)
    table = get_arch(arch_of(size)).slots
    folded = read_pdparams(folded_pdparams(shared_dir, size))
    refolded = fold_bn(read_pdparams(converted['real_pdparams', size][1]['source']), table)
    for s in table.with_norm:
        w, b = refolded[s.conv]
        ref_w, ref_b = folded[s.conv + '.weight'], folded[s.norm + '.bias']
        assert np.abs(w - ref_w).max() <= 1e-6 * max(1., np.abs(ref_w).max()), s.conv
        assert np.abs(b - ref_b).max() <= 1e-6 * max(1., np.abs(ref_b).max()), s.norm
    # the real-BN checkpoint keeps real statistics
    var = 'backbone.conv1.bn.running_var'
    assert not torch.equal(sd['real_pdparams'][var], sd['ir'][var])


def test_meta_and_init_detector(sources, converted):
    from mmdet.apis import init_detector
    ckpt, meta = converted['ir', 192]
    assert meta['source_format'] == 'openvino' and meta['config'] == get_arch(arch_of(192)).config
    assert meta['source_sha256'] == sha256sum(detect(sources['ir', 192])['main_file'])
    assert meta['converter_version'] == CONVERTER_VERSION
    assert _load(ckpt)['meta']['dataset_meta']['classes'] == ('person', )
    assert {converted[f, 320][1]['source_format'] for f in FORMS} == {'openvino', 'paddle_pir', 'pdparams',
                                                                      'paddle_legacy'}
    model = init_detector(build_detector(arch_of(192)).cfg, ckpt, device='cpu')
    assert model.dataset_meta['classes'] == ('person', )
