"""Paddle inference readers: PIR (model.json, PaddleX inference.json) and legacy .pdmodel, + the deploy config."""
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest

from weight_convert.convert import convert
from weight_convert.errors import WeightsError
from weight_convert.formats import detect, read_any
from weight_convert.paddle_inference import read_deploy_config
from weight_convert.pdparams import read_pdparams

from ._helpers import PADDLEX, SIZES, heatmaps, write_legacy


def test_paddle_pir_inference_model_matches_ppdet(shared_dir, tmp_path):
    meta = convert(osp.join(shared_dir, 'fixtures/random/128x96_infer'), str(tmp_path / 'pir.pth'))
    assert meta['source_format'] == 'paddle_pir' and meta['arch'] == 'pp_tinypose_128x96'
    x = np.load(osp.join(shared_dir, 'fixtures/random/128x96_input_b8.npy'))
    ref = np.load(osp.join(shared_dir, 'fixtures/random/128x96_heatmap_b8.npy'))
    assert np.abs(heatmaps(str(tmp_path / 'pir.pth'), x) - ref).max() <= 1e-5


def test_pir_tensors_equal_training_checkpoint(shared_dir):
    state, _ = read_any(osp.join(shared_dir, 'fixtures/random/256x192_infer'))
    ref = read_pdparams(osp.join(shared_dir, 'fixtures/random/256x192_randomized.pdparams'))
    assert set(state) == set(ref)
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


# ------------------------------------------------------------------------------- PaddleX model directory

@pytest.mark.parametrize('size', SIZES)
def test_paddlex_model_dir(shared_dir, size):
    """inference.json + inference.pdiparams + inference.yml: the folded enhance tensors, arch and model name."""
    src = osp.join(shared_dir, PADDLEX, f'PP-TinyPose_{size}')
    assert detect(src)['files'] == (osp.join(src, 'inference.json'), osp.join(src, 'inference.pdiparams'))
    state, info = read_any(src)
    assert info['format'] == 'paddle_pir' and info['arch'] == f'pp_tinypose_{size}'
    assert info['model_name'] == f'PP-TinyPose_{size}'
    # exported from the folded fixture: float32 equality, tensor by tensor (fixtures/README.md)
    ref = read_pdparams(osp.join(shared_dir, f'fixtures/enhance/{size}_enhance_folded.pdparams'))
    assert set(state) == set(ref) and all(np.array_equal(state[k], ref[k]) for k in ref)


@pytest.mark.parametrize('size', SIZES)
def test_paddlex_model_dir_converts_like_the_folded_pdparams(shared_dir, tmp_path, size):
    import torch
    src = osp.join(shared_dir, PADDLEX, f'PP-TinyPose_{size}')
    meta = convert(src, str(tmp_path / 'pdx.pth'), model=f'PP-TinyPose_{size}')
    assert meta['arch'] == f'pp_tinypose_{size}' and meta['source_model_name'] == f'PP-TinyPose_{size}'
    assert meta['source_sha256'] and meta['model'] == f'PP-TinyPose_{size}' and not meta['arch_inferred']
    convert(osp.join(shared_dir, f'fixtures/enhance/{size}_enhance_folded.pdparams'), str(tmp_path / 'ref.pth'),
            arch=f'pp_tinypose_{size}')
    a = torch.load(tmp_path / 'pdx.pth', map_location='cpu', weights_only=True)['state_dict']
    b = torch.load(tmp_path / 'ref.pth', map_location='cpu', weights_only=True)['state_dict']
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_paddlex_model_name_without_trainsize_gives_arch(tmp_path):
    (tmp_path / 'inference.yml').write_text('Global:\n  model_name: PP-TinyPose_256x192\n')
    assert read_deploy_config(str(tmp_path)) == ('pp_tinypose_256x192', 'PP-TinyPose_256x192')
    (tmp_path / 'inference.yml').write_text('Global: [unclosed\n')
    assert read_deploy_config(str(tmp_path)) == (None, None)  # an odd deploy config only loses the hint


def test_arch_from_deploy_config(shared_dir, tmp_path):
    """A PIR program with a dynamic input shape: the size comes from infer_cfg.yml / inference.yml."""
    src = osp.join(shared_dir, 'fixtures/random/128x96_infer')
    with open(osp.join(src, 'model.json')) as f:
        prog = json.load(f)
    for op in prog['program']['regions'][0]['blocks'][0]['ops']:
        for a in op.get('A', []) if op.get('#') == '1.data' else []:
            if a.get('N') == 'shape':
                a['AT']['D'] = [-1, 3, -1, -1]
    (tmp_path / 'inference.json').write_text(json.dumps(prog))
    shutil.copy(osp.join(src, 'model.pdiparams'), tmp_path / 'inference.pdiparams')
    assert read_any(str(tmp_path))[1]['arch'] is None
    (tmp_path / 'inference.yml').write_text('PreProcess:\n  transform_ops:\n  - TopDownEvalAffine:\n'
                                            '      trainsize: [192, 256]\n')
    assert read_any(str(tmp_path))[1]['arch'] == 'pp_tinypose_256x192'


def test_truncated_pdiparams(shared_dir, tmp_path):
    src = osp.join(shared_dir, 'fixtures/random/128x96_infer')
    shutil.copy(osp.join(src, 'model.json'), tmp_path)
    data = open(osp.join(src, 'model.pdiparams'), 'rb').read()
    (tmp_path / 'model.pdiparams').write_bytes(data[:len(data) - 1000])
    with pytest.raises(WeightsError, match='truncated'):
        read_any(str(tmp_path))


def test_not_a_pir_program(tmp_path):
    (tmp_path / 'model.json').write_text('{"program": {}}')
    (tmp_path / 'model.pdiparams').write_bytes(b'')
    with pytest.raises(WeightsError, match='not a Paddle PIR program'):
        read_any(str(tmp_path))


# ------------------------------------------------------------------------- legacy .pdmodel (synthetic)

def test_legacy_pdmodel_synthetic(random_framework_tensors, tmp_path):
    tensors, ref = random_framework_tensors
    write_legacy(str(tmp_path), tensors, input_hw=(256, 192))
    state, info = read_any(str(tmp_path))
    assert info['format'] == 'paddle_legacy' and info['arch'] == 'pp_tinypose_256x192'
    assert set(state) == set(ref) and all(np.array_equal(state[k], ref[k]) for k in ref)
    with pytest.raises(ValueError, match='PP-TinyPose_128x96 was asked for'):
        convert(str(tmp_path), str(tmp_path / 'x.pth'), arch='PP-TinyPose_128x96')
    assert not (tmp_path / 'x.pth').exists()


def _framework_table(ref, tensors):
    """structured name -> framework name, recovered by identity of the arrays."""
    by_id = {id(v): k for k, v in tensors.items()}
    return {k: by_id[id(v)] for k, v in ref.items()}


def test_legacy_with_pdiparams_info_uses_the_table(random_framework_tensors, tmp_path):
    """Framework numbers scrambled: only model.pdiparams.info can name the tensors right."""
    tensors, ref = random_framework_tensors
    rng = np.random.default_rng(1)
    names = list(tensors)
    scrambled = dict(zip(names, (f'w{i}.w_0' for i in rng.permutation(len(names)))))
    write_legacy(str(tmp_path), {scrambled[n]: tensors[n] for n in names})
    structured = {v: k for k, v in _framework_table(ref, tensors).items()}
    table = {scrambled[n]: {'structured_name': structured[n], 'trainable': True} for n in names}
    (tmp_path / 'model.pdiparams.info').write_bytes(pickle.dumps(table, protocol=2))
    state, info = read_any(str(tmp_path))
    assert info['arch'] == 'pp_tinypose_128x96'
    assert set(state) == set(ref) and all(np.array_equal(state[k], ref[k]) for k in ref)


def test_non_tinypose_paddle_model_lists_unmatched(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {'conv2d_0.w_0': rng.random((8, 3, 3, 3)), 'fc_0.w_0': rng.random((8, 10)), 'fc_0.b_0': rng.random(10)}
    write_legacy(str(tmp_path), tensors)
    with pytest.raises(WeightsError, match=r'fc_0\.w_0') as e:
        read_any(str(tmp_path))
    assert 'PP-TinyPose' in str(e.value)
