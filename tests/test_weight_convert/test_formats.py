"""Every released format -> our checkpoint -> heatmaps equal to the source runtime / ppdet fixtures."""
import os.path as osp
import shutil
import struct

import numpy as np
import pytest
import torch

from weight_convert.convert import convert
from weight_convert.formats import FormatError, read_any
from weight_convert.pdparams import read_pdparams

from ._helpers import heatmaps, ncnn_heatmaps, openvino_heatmaps

SIZES = ('128x96', '256x192')
IR = 'weights/pp_tinypose_enhance_openvino_fp16'
NCNN = 'weights/pp_tinypose_2021_ncnn_fp16'


def _argmax(h):
    return h.reshape(h.shape[0], h.shape[1], -1).argmax(-1)


@pytest.fixture(scope='module')
def converted(shared_dir, tmp_path_factory):
    """Each shared source converted once: {(kind, size): checkpoint path}."""
    out = tmp_path_factory.mktemp('ckpt')
    paths = {}
    for size in SIZES:
        convert(osp.join(shared_dir, IR, size), str(out / f'ir_{size}.pth'))
        paths['ir', size] = str(out / f'ir_{size}.pth')
        src = osp.join(shared_dir, NCNN, f'tinypose_{size}.param')
        convert(src, str(out / f'ncnn_{size}.pth'))
        paths['ncnn', size] = str(out / f'ncnn_{size}.pth')
    return paths


@pytest.mark.parametrize('size', SIZES)
def test_openvino_ir_matches_openvino_runtime(shared_dir, converted, size):
    x = np.load(osp.join(shared_dir, f'fixtures/enhance/{size}_real_crops_b8.npy'))
    ours = heatmaps(converted['ir', size], x, f'PP-TinyPose_{size}')
    ref = openvino_heatmaps(osp.join(shared_dir, IR, size, 'model.xml'), x)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 2e-3
    assert (_argmax(ours) == _argmax(ref)).all()


@pytest.mark.parametrize('size', SIZES)
def test_ncnn_matches_ncnn_runtime(shared_dir, converted, size):
    x = np.load(osp.join(shared_dir, f'fixtures/enhance/{size}_real_crops_b8.npy'))
    ours = heatmaps(converted['ncnn', size], x, f'PP-TinyPose_{size}')
    stem = osp.join(shared_dir, NCNN, f'tinypose_{size}')
    ref = ncnn_heatmaps(stem + '.param', stem + '.bin', x)
    fixture = np.load(osp.join(shared_dir, f'fixtures/ncnn2021/{size}_real_crops_b8_heatmap_ncnn.npy'))
    for other in (ref, fixture):
        assert np.abs(ours - other).max() <= 2e-3
        assert (_argmax(ours) == _argmax(other)).all()


def test_paddle_pir_inference_model_matches_ppdet(shared_dir, tmp_path):
    meta = convert(osp.join(shared_dir, 'fixtures/random/128x96_infer'), str(tmp_path / 'pir.pth'))
    assert meta['source_format'] == 'paddle_pir' and meta['arch'] == 'PP-TinyPose_128x96'
    x = np.load(osp.join(shared_dir, 'fixtures/random/128x96_input_b8.npy'))
    ref = np.load(osp.join(shared_dir, 'fixtures/random/128x96_heatmap_b8.npy'))
    assert np.abs(heatmaps(str(tmp_path / 'pir.pth'), x) - ref).max() <= 1e-5


def test_pir_tensors_equal_training_checkpoint(shared_dir):
    state, _ = read_any(osp.join(shared_dir, 'fixtures/random/256x192_infer'))
    ref = read_pdparams(osp.join(shared_dir, 'fixtures/random/256x192_randomized.pdparams'))
    assert set(state) == set(ref)
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


@pytest.mark.parametrize('size', SIZES)
def test_ir_equals_folded_pdparams(shared_dir, size):
    state, info = read_any(osp.join(shared_dir, IR, size))
    assert info['arch'] == f'PP-TinyPose_{size}'
    ref = read_pdparams(osp.join(shared_dir, f'fixtures/enhance/{size}_enhance_folded.pdparams'))
    assert set(state) == set(ref)
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


def test_ir_without_side_files_uses_names_in_xml(shared_dir, tmp_path):
    """No model.mapping / model.pdiparams.info: the batch_norm2d_K names left in the IR, by rank."""
    src = osp.join(shared_dir, IR, '256x192')
    for name in ('model.xml', 'model.bin'):
        shutil.copy(osp.join(src, name), tmp_path)
    state, info = read_any(str(tmp_path))
    assert info['arch'] == 'PP-TinyPose_256x192'
    ref = read_pdparams(osp.join(shared_dir, 'fixtures/enhance/256x192_enhance_folded.pdparams'))
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


def test_ir_without_names_uses_graph_order(shared_dir, tmp_path):
    """No model.mapping / .info and no Paddle names left in the xml: matched by dataflow + shapes."""
    src = osp.join(shared_dir, IR, '128x96')
    with open(osp.join(src, 'model.xml')) as f:
        xml = f.read()
    import re
    xml = re.sub(r'batch_norm2d_(\d+)', r'bnx\1', xml)
    xml = re.sub(r'conv2d_(\d+)\.w_0', r'cvx\1', xml)
    (tmp_path / 'model.xml').write_text(xml)
    shutil.copy(osp.join(src, 'model.bin'), tmp_path / 'model.bin')
    state, _ = read_any(str(tmp_path))
    ref = read_pdparams(osp.join(shared_dir, 'fixtures/enhance/128x96_enhance_folded.pdparams'))
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


# ------------------------------------------------------------------------- legacy .pdmodel (synthetic)
# No released legacy inference model is reachable here, so the test writes one following Paddle's
# paddle/fluid/framework/framework.proto (ProgramDesc > BlockDesc > VarDesc/OpDesc) and the combined
# params layout (SerializeToStream records in sorted-name order), with the ppdet tensors of the
# randomised fixture under their framework names.

def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(no, value):
    if isinstance(value, int):
        return _varint(no << 3) + _varint(value)
    value = value.encode() if isinstance(value, str) else value
    return _varint(no << 3 | 2) + _varint(len(value)) + value


def _tensor_desc(dtype, dims):
    return _field(1, dtype) + b''.join(_field(2, d) for d in dims)


def _var(name, vtype, persistable, dims=None):
    vt = _field(1, vtype)
    if dims is not None:
        vt += _field(3, _field(1, _tensor_desc(5, dims)))  # LoDTensorDesc{tensor: TensorDesc}
    return _field(1, name) + _field(2, vt) + _field(3, int(persistable))


def _op(type_, inputs, outputs):
    enc = b''
    for no, args in ((1, inputs), (2, outputs)):
        for param, names in args.items():
            enc += _field(no, _field(1, param) + b''.join(_field(2, n) for n in names))
    return enc + _field(3, type_)


def write_legacy(directory, tensors, input_hw=(128, 96)):
    """Write model.pdmodel + model.pdiparams holding ``tensors`` ({framework name: array})."""
    block = _field(1, 0) + _field(2, -1)
    block += _field(3, _var('feed', 9, True)) + _field(3, _var('fetch', 10, True))
    block += _field(3, _var('image', 7, False, [-1, 3, *input_hw]))
    for name, arr in tensors.items():
        block += _field(3, _var(name, 7, True, list(arr.shape)))
    block += _field(4, _op('feed', {'X': ['feed']}, {'Out': ['image']}))
    with open(osp.join(directory, 'model.pdmodel'), 'wb') as f:
        f.write(_field(1, block))
    with open(osp.join(directory, 'model.pdiparams'), 'wb') as f:
        for name in sorted(tensors):
            arr = np.ascontiguousarray(tensors[name], '<f4')
            desc = _tensor_desc(5, list(arr.shape))
            f.write(struct.pack('<IQIi', 0, 0, 0, len(desc)) + desc + arr.tobytes())


@pytest.fixture(scope='module')
def random_framework_tensors(shared_dir):
    from kpt_plugin.safe_pickle import safe_load
    raw = safe_load(osp.join(shared_dir, 'fixtures/random/256x192_randomized.pdparams'))
    table = raw.pop('StructuredToParameterName@@')
    return {table[k]: v for k, v in raw.items()}, {k: v for k, v in raw.items()}


def test_legacy_pdmodel_synthetic(random_framework_tensors, tmp_path):
    tensors, ref = random_framework_tensors
    write_legacy(str(tmp_path), tensors, input_hw=(256, 192))
    state, info = read_any(str(tmp_path))
    assert info['format'] == 'paddle_legacy' and info['arch'] == 'PP-TinyPose_256x192'
    assert set(state) == set(ref) and all(np.array_equal(state[k], ref[k]) for k in ref)
    with pytest.raises(ValueError, match='--arch PP-TinyPose_128x96 was given'):
        convert(str(tmp_path), str(tmp_path / 'x.pth'), arch='PP-TinyPose_128x96')
    assert not (tmp_path / 'x.pth').exists()


def test_legacy_with_pdiparams_info_uses_the_table(random_framework_tensors, tmp_path):
    """Framework numbers scrambled: only model.pdiparams.info can name the tensors right."""
    import pickle
    tensors, ref = random_framework_tensors
    rng = np.random.default_rng(1)
    names = list(tensors)
    scrambled = dict(zip(names, (f'w{i}.w_0' for i in rng.permutation(len(names)))))
    write_legacy(str(tmp_path), {scrambled[n]: tensors[n] for n in names})
    structured = {v: k for k, v in _framework_table(ref, tensors).items()}
    table = {scrambled[n]: {'structured_name': structured[n], 'trainable': True} for n in names}
    (tmp_path / 'model.pdiparams.info').write_bytes(pickle.dumps(table, protocol=2))
    state, info = read_any(str(tmp_path))
    assert info['arch'] == 'PP-TinyPose_128x96'
    assert set(state) == set(ref) and all(np.array_equal(state[k], ref[k]) for k in ref)


def _framework_table(ref, tensors):
    """structured name -> framework name, recovered by identity of the arrays."""
    by_id = {id(v): k for k, v in tensors.items()}
    return {k: by_id[id(v)] for k, v in ref.items()}


def test_non_tinypose_paddle_model_lists_unmatched(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {'conv2d_0.w_0': rng.random((8, 3, 3, 3)), 'fc_0.w_0': rng.random((8, 10)), 'fc_0.b_0': rng.random(10)}
    write_legacy(str(tmp_path), tensors)
    with pytest.raises(FormatError, match=r'fc_0\.w_0') as e:
        read_any(str(tmp_path))
    assert 'PP-TinyPose' in str(e.value)


# ----------------------------------------------------------------------------------------- bad input

def test_truncated_pdiparams(shared_dir, tmp_path):
    src = osp.join(shared_dir, 'fixtures/random/128x96_infer')
    shutil.copy(osp.join(src, 'model.json'), tmp_path)
    data = open(osp.join(src, 'model.pdiparams'), 'rb').read()
    (tmp_path / 'model.pdiparams').write_bytes(data[:len(data) - 1000])
    with pytest.raises(FormatError, match='truncated'):
        read_any(str(tmp_path))


@pytest.mark.parametrize('kind', ['openvino', 'ncnn'])
def test_truncated_bin(shared_dir, tmp_path, kind):
    if kind == 'openvino':
        src = osp.join(shared_dir, IR, '128x96')
        shutil.copy(osp.join(src, 'model.xml'), tmp_path)
        data = open(osp.join(src, 'model.bin'), 'rb').read()
        (tmp_path / 'model.bin').write_bytes(data[:len(data) // 2])
        target = str(tmp_path)
    else:
        stem = osp.join(shared_dir, NCNN, 'tinypose_128x96')
        shutil.copy(stem + '.param', tmp_path / 't.param')
        data = open(stem + '.bin', 'rb').read()
        (tmp_path / 't.bin').write_bytes(data[:len(data) - 100])
        target = str(tmp_path / 't.param')
    with pytest.raises(FormatError, match='truncated'):
        read_any(target)


def test_ir_256_with_mismatching_arch_refused(shared_dir, tmp_path):
    with pytest.raises(ValueError, match='PP-TinyPose_256x192'):
        convert(osp.join(shared_dir, IR, '256x192'), str(tmp_path / 'x.pth'), arch='PP-TinyPose_128x96')
    assert not (tmp_path / 'x.pth').exists()


def test_directory_without_model(tmp_path):
    (tmp_path / 'notes.txt').write_text('nothing here')
    with pytest.raises(FormatError, match='no model found'):
        read_any(str(tmp_path))


def test_directory_with_two_models_asks_which(shared_dir):
    with pytest.raises(FormatError, match='several models'):
        read_any(osp.join(shared_dir, NCNN))


def test_unsafe_pickle_refused_without_running(tmp_path):
    import pickle
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


def test_checkpoint_meta(shared_dir, converted):
    ckpt = torch.load(converted['ir', '256x192'], map_location='cpu', weights_only=True)
    meta = ckpt['meta']
    assert meta['source_format'] == 'openvino' and meta['arch'] == 'PP-TinyPose_256x192'
    from weight_convert.convert import CONVERTER_VERSION, sha256sum
    assert meta['source_sha256'] == sha256sum(osp.join(shared_dir, IR, '256x192', 'model.bin'))
    assert meta['converter_version'] == CONVERTER_VERSION


def test_arch_from_deploy_config(shared_dir, tmp_path):
    """A PIR program with a dynamic input shape: the size comes from infer_cfg.yml / inference.yml."""
    import json
    src = osp.join(shared_dir, 'fixtures/random/128x96_infer')
    with open(osp.join(src, 'model.json')) as f:
        text = f.read()
    prog = json.loads(text)
    for op in prog['program']['regions'][0]['blocks'][0]['ops']:
        for a in op.get('A', []) if op.get('#') == '1.data' else []:
            if a.get('N') == 'shape':
                a['AT']['D'] = [-1, 3, -1, -1]
    (tmp_path / 'inference.json').write_text(json.dumps(prog))
    shutil.copy(osp.join(src, 'model.pdiparams'), tmp_path / 'inference.pdiparams')
    assert read_any(str(tmp_path))[1]['arch'] is None
    (tmp_path / 'inference.yml').write_text('PreProcess:\n  transform_ops:\n  - TopDownEvalAffine:\n'
                                            '      trainsize: [192, 256]\n')
    assert read_any(str(tmp_path))[1]['arch'] == 'PP-TinyPose_256x192'
