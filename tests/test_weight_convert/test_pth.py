"""The ``.pth`` reader: our checkpoints (and ones written by earlier releases) back into ppdet names."""
import numpy as np
import torch

from weight_convert.formats import read_any
from weight_convert.pdparams import read_pdparams


def test_checkpoint_back_to_ppdet_names(random_pdparams, tmp_path):
    from weight_convert.convert import convert
    convert(random_pdparams, str(tmp_path / 'r.pth'))
    state, info = read_any(str(tmp_path / 'r.pth'))
    assert info == dict(format='pth', arch='pp_tinypose_128x96', main_file=str(tmp_path / 'r.pth'), model_name=None,
                        family='pp_tinypose')
    ref = read_pdparams(random_pdparams)
    assert set(state) == set(ref)
    assert all(np.array_equal(state[k], ref[k]) for k in ref)


def test_old_meta_arch_spelling_and_ddp_prefix(random_pdparams, tmp_path):
    """Checkpoints converted by earlier releases record ``PP-TinyPose_256x192``; DDP saves ``module.``."""
    from weight_convert.convert import convert
    convert(random_pdparams, str(tmp_path / 'r.pth'))
    ckpt = torch.load(tmp_path / 'r.pth', map_location='cpu', weights_only=True)
    ckpt['meta']['arch'] = 'PP-TinyPose_256x192'
    ckpt['state_dict'] = {'module.' + k: v for k, v in ckpt['state_dict'].items()}
    torch.save(ckpt, tmp_path / 'old.pth')
    state, info = read_any(str(tmp_path / 'old.pth'))
    assert info['arch'] == 'pp_tinypose_256x192' and 'backbone.stem.conv1.conv.weight' in state
    ckpt['meta']['arch'] = 'somebody_elses_arch'
    torch.save(ckpt, tmp_path / 'other.pth')
    assert read_any(str(tmp_path / 'other.pth'))[1]['arch'] is None
