"""The static slot tables equal the built MMPose model (names, order, shapes) and ppdet's own numbering."""
import pytest

from weight_convert.archs import ARCHS, get_arch
from weight_convert.convert import reference_state
from weight_convert.tables import load

from ._helpers import build_model


@pytest.mark.parametrize('arch', sorted(a for a in ARCHS if ARCHS[a].family == 'pp_tinypose'))
def test_reference_state_equals_the_built_model(arch):  # PicoDet's: test_picodet_table.py
    model = build_model(arch)
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ours = reference_state(arch)
    assert list(ours) == list(built)
    assert ours == built


def test_table_follows_paddle_creation_order(random_pdparams):
    """conv2d_K / batch_norm2d_K of a real paddle.save file (the first model built: numbered from 0) are slot K."""
    from weight_convert.safe_pickle import safe_load
    ref = safe_load(random_pdparams)
    fw_names = ref.pop('StructuredToParameterName@@')
    table = get_arch('pp_tinypose_128x96').slots
    assert {k: v for k, v in table.paddle_framework_names().items() if k in ref} == fw_names
    assert dict(table.source_shapes()) == {k: v.shape for k, v in ref.items()}
    assert table.paddle_order(ref) == list(ref)


def test_table_is_parsed_once():
    t = load('pp_tinypose')
    assert t is load('pp_tinypose') and len(t) == 269 and len(t.with_norm) == 268
    assert t[-1].conv == 'final_conv' and t[-1].norm is None and t[-1].shape == (17, 40, 1, 1)
    assert 'PP-TinyPose' in t.description
