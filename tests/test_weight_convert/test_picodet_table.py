"""The PicoDet slot table against the built mmdet model (tensors, data flow) and Paddle's own program (execution
order, creation numbers); the PicoDet rows of the arch table; the family's name mapping and export constants."""
import json
import os.path as osp
import re

import numpy as np
import pytest

from weight_convert import archs, families
from weight_convert.convert import reference_state
from weight_convert.families import picodet
from weight_convert.paddle_inference import read_pdiparams
from weight_convert.pdparams import read_pdparams

from ._helpers import REPO
from ._picodet import PIR, SIZES, arch_of, build_detector, folded_pdparams

TABLE = archs.get_arch(arch_of(192)).slots


def test_arch_rows():
    for size in SIZES:
        a = archs.get_arch(arch_of(size))
        assert (a.family, a.input_size, a.slots) == ('picodet', (size, size), TABLE)
        assert a.config == f'configs/picodet/picodet-s_lcnet-x0.75_pedestrian-{size}.py'
        assert osp.isfile(osp.join(REPO, a.config))
        assert archs.arch_from_input_size(size, size) == a.name
        assert archs.guess_arch_from_name(f'picodet_s_{size}_lcnet_pedestrian.zip') == a.name
    assert archs.guess_arch_from_name('tinypose_256x192') == 'pp_tinypose_256x192'  # 192 after an 'x' is no size
    assert archs.guess_arch_from_name('model_320.bin') is None  # a lone number without 'picodet' is no size
    assert archs.default_arch('picodet') == arch_of(320) and archs.default_arch() == 'pp_tinypose_128x96'
    assert archs.family_from_conv_count(98) == 'picodet' and archs.family_from_conv_count(269) == 'pp_tinypose'
    # the first release's view, now read from archs
    assert picodet.PICODET_ARCHS == {arch_of(s): dict(family='picodet', input_size=(s, s),
                                                      config=archs.get_arch(arch_of(s)).config) for s in SIZES}


def test_table_counts():
    assert len(TABLE) == 98 and len(TABLE.with_norm) == 82 and TABLE.has_deps
    plain = [s for s in TABLE if not s.norm]
    assert len(plain) == 16 and all(len(s.shape) == 4 for s in plain)
    assert sorted(s.conv_k for s in TABLE) == [k for k in range(100) if k not in (82, 83)]  # GFLHead's dropped convs
    assert sorted(s.bn_k for s in TABLE.with_norm) == list(range(82))
    assert list(TABLE.buffers) == ['head.distribution_project.project']


@pytest.mark.parametrize('arch', [arch_of(s) for s in SIZES])
def test_reference_state_equals_the_built_model(arch):
    model = build_detector(arch)
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert reference_state(arch) == built  # names and shapes; our modules register in another order
    np.testing.assert_array_equal(model.state_dict()['bbox_head.distribution_project.project'].numpy(),
                                  TABLE.buffers['head.distribution_project.project'])


def test_upstream_convs_are_the_models():
    """Each slot's listed upstream convs are the convs its input depends on in our model (autograd graph)."""
    import torch
    model = build_detector(arch_of(192))
    convs = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    out_fn, in_fn, order, hooks = {}, {}, [], []

    def record(prefix):
        def pre(mod, args):
            in_fn[prefix] = args[0].grad_fn

        def post(mod, args, out):
            out_fn[out.grad_fn] = prefix
            order.append(prefix)
        return pre, post

    for name, m in convs.items():
        pre, post = record(picodet.from_mmpose_name(name + '.weight')[:-len('.weight')])
        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    x = torch.rand(1, 3, 192, 192, requires_grad=True)
    try:
        model._forward(x)
    finally:
        for h in hooks:
            h.remove()
    k_of = {s.conv: s.conv_k for s in TABLE}

    def upstream(fn):
        found, stack, seen = set(), [fn], set()
        while stack:
            f = stack.pop()
            if f is None or f in seen:
                continue
            seen.add(f)
            if f in out_fn:
                found.add(k_of[out_fn[f]])
                continue
            stack.extend(g for g, _ in f.next_functions)
        return found

    assert sorted(order) == sorted(k_of)  # every conv runs once
    for s in TABLE:
        assert upstream(in_fn[s.conv]) == set(s.deps), s.conv


@pytest.mark.parametrize('size', SIZES)
def test_execution_order_and_creation_numbers_are_paddles(shared_dir, size):
    """In ppdet's exported program (exported from the folded fixture): convs run in table order, and each slot's
    ``conv2d_K`` / ``batch_norm2d_K`` holds that slot's tensors."""
    d = osp.join(shared_dir, PIR, str(size))
    ops = json.load(open(osp.join(d, 'model.json')))['program']['regions'][0]['blocks'][0]['ops']
    params = {o['O']['%']: re.sub(r'_deepcopy_\d+$', '', o['A'][3]) for o in ops if o.get('#') == 'p'}
    run = [next(params[i['%']] for i in o['I'] if i['%'] in params)
           for o in ops if o.get('#') in ('1.conv2d', '1.depthwise_conv2d')]
    assert run == [f'conv2d_{s.conv_k}.w_0' for s in TABLE]
    raw = read_pdiparams(osp.join(d, 'model.pdiparams'), sorted(o['A'][3] for o in ops if o.get('#') == 'p'))
    tensors = {re.sub(r'_deepcopy_\d+$', '', k): v for k, v in raw.items()}
    ref = read_pdparams(folded_pdparams(shared_dir, size))
    names = TABLE.paddle_framework_names()
    for name in TABLE.source_shapes():
        if name in names:
            np.testing.assert_array_equal(tensors[names[name]], ref[name], err_msg=name)
    # the rest are the export constants of a SxS input
    rest = {k: v for k, v in tensors.items() if k not in set(names.values())}
    assert sorted(families.drop_constants('picodet', rest, [(size, size)])[0].values()) == [
        'anchor_points', 'distribution_project', 'stride_tensor'] and not rest


def test_aliases_and_family_hints():
    w = np.ones((1, 96, 1, 1), np.float32)
    # an export that names a predictor by its alias only: the alias stands for the tensor
    assert list(picodet.to_mmpose({'head.head_cls2.weight': w})) == ['bbox_head.head_cls_list.2.weight']
    assert families.family_of_names(['head.conv_feat.se.0.fc.weight', 'backbone.conv1.conv.weight']) == 'picodet'
    assert families.family_of_names(['bbox_head.head_cls_list.0.bias']) == 'picodet'
    assert families.family_of_names(['final_conv.weight', 'backbone.stem.conv1.conv.weight']) == 'pp_tinypose'
    assert families.family_of_names(['x.weight']) is None
    assert families.family_of_deploy_arch('PicoDet') == families.family_of_deploy_arch('GFL') == 'picodet'
    assert families.family_of_deploy_arch('HRNet') == 'pp_tinypose' and families.family_of_deploy_arch('YOLO') is None


def test_export_constants_tell_the_size():
    c = picodet.export_constants((320, 320))
    assert c['anchor_points'].shape == (2125, 2) and c['stride_tensor'].shape == (2125, 1)
    np.testing.assert_array_equal(c['anchor_points'][:2], [[0.5, 0.5], [1.5, 0.5]])
    sizes = [(s, s) for s in SIZES]
    assert families.drop_constants('picodet', dict(c), sizes)[1] == (320, 320)
    # the projection alone is the same at every size: dropped, but it tells none
    only = {'p': c['distribution_project']}
    assert families.drop_constants('picodet', only, sizes) == ({'p': 'distribution_project'}, None) and not only
    assert families.drop_constants('pp_tinypose', dict(c), sizes) == ({}, None)


def test_a_table_typo_fails_on_load():
    from weight_convert.tables import SlotTable
    with pytest.raises(ValueError, match='b.conv reads a conv that runs later'):
        SlotTable('t', 'd', 'a.conv a.bn 8x3x3x3 0 0 -\nb.conv - 8x8x1x1 1 - 2')
    with pytest.raises(ValueError, match='duplicate creation numbers'):
        SlotTable('t', 'd', 'a.conv a.bn 8x3x3x3 0 0 -\nb.conv b.bn 8x8x1x1 0 1 0')
