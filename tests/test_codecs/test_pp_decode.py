"""The vectorised predict decode gives ppdet_decode's numbers (which match PaddleDetection's fixtures)."""
import os.path as osp

import numpy as np
import pytest

from kpt_plugin.codecs.pp_decode import decode_heatmaps
from kpt_plugin.codecs.pp_heatmap import ppdet_decode


@pytest.mark.parametrize('size', ['128x96', '256x192'])
def test_decode_equals_reference(shared_dir, size):
    rnd = osp.join(shared_dir, 'fixtures', 'random')
    ref = np.load(osp.join(rnd, f'{size}_decode_reference.npz'))
    cases = [(np.load(osp.join(rnd, f'{size}_heatmap_b8.npy')), ref['center'], ref['scale'])]
    enh = osp.join(shared_dir, 'fixtures', 'enhance')
    meta = np.load(osp.join(enh, f'{size}_real_crops_b8_meta.npz'))
    cases.append((np.load(osp.join(enh, f'{size}_real_crops_b8_heatmap_paddle.npy')), meta['center'], meta['scale']))
    for hm, center, scale in cases:
        p_ref, m_ref = ppdet_decode(hm, center, scale)
        p, m = decode_heatmaps(hm, center, scale)
        np.testing.assert_array_equal(m, m_ref)
        assert np.abs(p - p_ref).max() <= 1e-4
    # PaddleDetection's own numbers on the random maps (edge cases: non-positive maxima, border peaks)
    p, m = decode_heatmaps(cases[0][0], ref['center'], ref['scale'])
    assert np.abs(p - ref['keypoints']).max() <= 0.02


def test_empty_batch():
    p, m = decode_heatmaps(np.zeros((0, 17, 32, 24), np.float32), np.zeros((0, 2)), np.zeros((0, 2)))
    assert p.shape == (0, 17, 2) and m.shape == (0, 17, 1)


def test_rescale_uses_the_blurred_map_interior_only():
    """The keep-max rescale divides by the maximum inside the map (ppdet crops the padding off first). Here the
    blur leaks a positive value into the zero ring while every blurred pixel inside the map is negative."""
    hm = np.full((1, 17, 32, 24), -10.0, np.float32)
    hm[:, :, 0, :] = 0.9
    hm[:, :, 16, 12] = 1.0
    hm[:, :, 16, 13] = -3.0
    hm[:, :, 15, 12] = -6.0
    center, scale = np.array([[50., 60.]]), np.array([[1.0, 1.3]])
    p_ref, m_ref = ppdet_decode(hm, center, scale)
    p, m = decode_heatmaps(hm, center, scale)
    np.testing.assert_array_equal(m, m_ref)
    assert np.abs(p - p_ref).max() <= 1e-4
