"""The architecture table: canonical names, aliases, sizes, configs."""
import os.path as osp

import pytest

from weight_convert import archs
from weight_convert.errors import WeightsError

from ._helpers import REPO


def test_table():
    assert archs.arch_names() == ['pp_tinypose_128x96', 'pp_tinypose_256x192', 'picodet_s_lcnet_pedestrian_192',
                                  'picodet_s_lcnet_pedestrian_320']
    assert archs.arch_names(aliases=True)[4:] == ['PP-TinyPose_128x96', 'PP-TinyPose_256x192']
    for a in archs.ARCHS.values():
        assert a.family in archs.FAMILIES and osp.isfile(osp.join(REPO, a.config))
        if a.family == 'pp_tinypose':
            assert f'{a.input_size[1]}x{a.input_size[0]}' in a.config and len(a.slots) == 269
    assert archs.DEFAULT_ARCH in archs.ARCHS and archs.ARCHS[archs.DEFAULT_ARCH].family == 'pp_tinypose'
    assert archs.FAMILIES == ('pp_tinypose', 'picodet')


@pytest.mark.parametrize('name', ['pp_tinypose_256x192', 'PP-TinyPose_256x192', 'pp_tinypose_256X192',
                                  'PP-TINYPOSE_256x192'])
def test_names_and_aliases(name):
    assert archs.get_arch(name) is archs.ARCHS['pp_tinypose_256x192']


def test_unknown_arch_lists_the_choices():
    with pytest.raises(WeightsError, match='pp_tinypose_128x96, pp_tinypose_256x192'):
        archs.get_arch('PP-TinyPose_64x48')


def test_sizes_and_names():
    assert archs.arch_from_input_size(192, 256) == 'pp_tinypose_256x192'
    assert archs.arch_from_input_size(256, 192) is None and archs.arch_from_input_size(-1, -1) is None
    assert archs.arch_from_input_size(96, 128, family='picodet') is None
    assert archs.guess_arch_from_name('/x/tinypose_128x96.pdparams') == 'pp_tinypose_128x96'
    assert archs.guess_arch_from_name('PP-TinyPose_256x192') == 'pp_tinypose_256x192'
    assert archs.guess_arch_from_name('model_1128x960.bin') is None


def test_slot_table_by_arch_or_family():
    assert archs.slot_table() is archs.slot_table(family='pp_tinypose') is archs.slot_table('PP-TinyPose_128x96')
    with pytest.raises(WeightsError, match='no slot tables'):
        archs.slot_table(family='nope')
