"""PP-TinyPose name mapping: ppdet <-> MMPose, exact inverses over every tensor."""
import numpy as np

from weight_convert.archs import get_arch
from weight_convert.families import from_mmpose, get_family, to_mmpose


def test_names_round_trip_over_the_whole_table():
    fam = get_family('pp_tinypose')
    names = list(get_arch('pp_tinypose_128x96').slots.source_shapes())
    mm = [fam.to_mmpose_name(n) for n in names]
    assert len(set(mm)) == len(mm) and [fam.from_mmpose_name(n) for n in mm] == names
    assert fam.to_mmpose_name('final_conv.weight') == 'head.final_layer.weight'
    assert fam.to_mmpose_name('backbone.stem.conv1.norm._variance') == 'backbone.stem.conv1.bn.running_var'
    assert fam.to_mmpose_name('backbone.transition0.0.1._mean') == 'backbone.transition0.0.1.running_mean'


def test_state_dicts_are_float32_and_drop_bn_counters():
    state = to_mmpose('pp_tinypose', {'final_conv.bias': np.arange(3, dtype=np.float64)})
    assert list(state) == ['head.final_layer.bias'] and state['head.final_layer.bias'].dtype == np.float32
    back = from_mmpose('pp_tinypose', dict(state, **{'backbone.stem.conv1.bn.num_batches_tracked': np.int64(5)}))
    assert list(back) == ['final_conv.bias']
