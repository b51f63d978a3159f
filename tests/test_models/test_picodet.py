"""PP-PicoDet-S LCNet pedestrian (192, 320) against PaddleDetection's own outputs (``fixtures/picodet``).

Weights: the fixtures' BN-folded ppdet state dicts. Each size's detector is built once (``init_detector`` on our
config and a checkpoint made from the fixture), and every check runs on every fixture image.
"""
import copy
import json
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import kpt_plugin  # noqa: F401  (compat layer)
from kpt_plugin.models.detection import batched_multiclass_nms, lcnet, multiclass_nms, pico_head  # registers
from kpt_plugin.models.detection.nms import box_iou_paddle
from kpt_plugin.models.detection.preprocess import STD, preprocess_image, resize
from weight_convert.families.picodet import PICODET_ARCHS, load_folded_pdparams, to_mmpose
from weight_convert.pdparams import read_pdparams

#: arch -> input size (square)
SIZES = {arch: a['input_size'][0] for arch, a in PICODET_ARCHS.items()}
#: fixture image stem -> folder under ../shared/data
STEMS = {'000000000785': 'coco_val2017_mini', '000000040083': 'coco_val2017_mini',
         '000000196141': 'coco_val2017_mini', '000000197388': 'coco_val2017_mini',
         'demo_2': 'demo', 'demo_4': 'demo', 'demo_7': 'demo'}
#: the fp16 OpenVINO IR's SE hard-sigmoid slope (ppdet: 0.1666667)
IR_SLOPE = 0.1666259765625
#: one grey level after normalisation, on the channel with the smallest std
ONE_LEVEL = 1 / 255 / min(STD)


def _golden(shared_dir, size, stem, kind):
    path = osp.join(shared_dir, 'fixtures', 'picodet', str(size), f'{stem}_{kind}')
    return np.load(path + '.npz') if kind == 'raw' else np.load(path + '.npy')


def _image_path(shared_dir, stem):
    return osp.join(shared_dir, 'data', STEMS[stem], stem + '.jpg')


def _folded_pdparams(shared_dir, size):
    return osp.join(shared_dir, 'fixtures', 'picodet', f'picodet_s_{size}_lcnet_pedestrian_folded.pdparams')


class _Detector:
    """One size's detector and its raw outputs on the golden inputs (computed once per image)."""

    def __init__(self, arch, model, shared_dir):
        self.arch, self.model, self.shared_dir = arch, model, shared_dir
        self.size = SIZES[arch]
        self._raw = {}

    def golden(self, stem, kind):
        return _golden(self.shared_dir, self.size, stem, kind)

    def raw(self, stem):
        """(boxes (1, N, 4), scores (1, 1, N)) for the golden network input."""
        if stem not in self._raw:
            x = torch.from_numpy(self.golden(stem, 'input'))
            with torch.no_grad():
                self._raw[stem] = self.model.bbox_head.decode(*self.model._forward(x))
        return self._raw[stem]


@pytest.fixture(scope='module', params=sorted(PICODET_ARCHS))
def detector(request, shared_dir, tmp_path_factory):
    from mmdet.apis import init_detector
    arch = request.param
    size = SIZES[arch]
    state = {k: torch.from_numpy(v) for k, v in load_folded_pdparams(_folded_pdparams(shared_dir, size)).items()}
    ckpt = str(tmp_path_factory.mktemp('picodet') / f'{arch}.pth')
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('person', ))), state_dict=state), ckpt)
    config = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), PICODET_ARCHS[arch]['config'])
    model = init_detector(config, ckpt, device='cpu')
    return _Detector(arch, model, shared_dir)


def test_fixture_images_are_the_listed_ones(shared_dir):
    import glob
    for size in SIZES.values():
        folder = osp.join(shared_dir, 'fixtures', 'picodet', str(size))
        stems = {osp.basename(p)[:-len('_input.npy')] for p in glob.glob(osp.join(folder, '*_input.npy'))}
        assert stems == set(STEMS)


@pytest.mark.parametrize('stem', sorted(STEMS))
@pytest.mark.parametrize('size', sorted(SIZES.values()))
def test_preprocess_matches_ppdet_input(shared_dir, size, stem):
    img = cv2.imread(_image_path(shared_dir, stem))
    x, scale_factor = preprocess_image(img, size)
    ref = _golden(shared_dir, size, stem, 'input')
    np.testing.assert_array_equal(scale_factor, _golden(shared_dir, size, stem, 'raw')['scale_factor'][0])
    assert x.shape == ref.shape == (1, 3, size, size) and x.dtype == np.float32
    # Bit-identical except where bicubic lands on a rounding tie (k + 0.5): OpenCV 4.5.5 (the fixtures) and
    # later releases round those pixels differently, one grey level apart.
    diff = np.abs(x - ref)[0]
    assert diff.max() <= ONE_LEVEL * (1 + 1e-5)
    assert (diff > 0).mean() <= 1e-4
    exact = cv2.cvtColor(resize(img.astype(np.float32), size)[0], cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    frac = exact[diff > 0] % 1
    assert np.all(np.abs(frac - 0.5) < 1e-3)


@pytest.mark.parametrize('stem', sorted(STEMS))
def test_config_pipeline_equals_ppdet_preprocessing(detector, stem):
    from mmcv.transforms import Compose
    path = _image_path(detector.shared_dir, stem)
    pipeline = Compose(copy.deepcopy(detector.model.cfg.test_dataloader.dataset.pipeline))
    data = pipeline(dict(img_path=path, img_id=0))
    batch = detector.model.data_preprocessor(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    x, scale_factor = preprocess_image(cv2.imread(path), detector.size)
    np.testing.assert_array_equal(batch['inputs'].numpy(), x)  # mmcv 'bicubic' == cv2.INTER_CUBIC
    w_scale, h_scale = batch['data_samples'][0].scale_factor
    np.testing.assert_array_equal(np.float32([h_scale, w_scale]), scale_factor)


@pytest.mark.parametrize('stem', sorted(STEMS))
def test_raw_predictions_match_ppdet(detector, stem):
    boxes, scores = detector.raw(stem)
    ref = detector.golden(stem, 'raw')
    n = sum(math.ceil(detector.size / s) ** 2 for s in detector.model.bbox_head.fpn_stride)  # 2125 / 765
    assert boxes.shape == (1, n, 4) and scores.shape == (1, 1, n)
    # network-input pixels; activations reach ~300, so float32 summation order alone moves boxes ~1e-3 px
    assert np.abs(boxes.numpy() - ref['boxes']).max() <= 5e-3
    assert np.abs(scores.numpy() - ref['scores']).max() <= 1e-4


@pytest.mark.parametrize('stem', sorted(STEMS))
def test_nms_output_matches_ppdet(detector, stem):
    ref = detector.golden(stem, 'nms_bbox')
    raw = detector.golden(stem, 'raw')
    scale_wh = tuple(float(s) for s in raw['scale_factor'][0][::-1])
    head = detector.model.bbox_head
    # ppdet's own pre-NMS outputs through our rescale + NMS: the very same rows
    on_golden = head.post_process(torch.from_numpy(raw['boxes'][0]), torch.from_numpy(raw['scores'][0]), scale_wh)
    np.testing.assert_array_equal(on_golden.numpy(), ref)
    # our network end to end from the golden input: same set and order, within float noise
    boxes, scores = detector.raw(stem)
    dets = head.post_process(boxes[0], scores[0], scale_wh).numpy()
    assert dets.shape == ref.shape
    np.testing.assert_array_equal(dets[:, 0], ref[:, 0])
    assert np.abs(dets[:, 1] - ref[:, 1]).max() <= 1e-4
    assert np.abs(dets[:, 2:] - ref[:, 2:]).max() <= 0.01


def test_inference_detector_matches_ppdet(detector):
    from mmdet.apis import inference_detector
    from mmdet.structures import DetDataSample
    for stem in sorted(STEMS):
        result = inference_detector(detector.model, _image_path(detector.shared_dir, stem))
        assert isinstance(result, DetDataSample)
        ref = detector.golden(stem, 'nms_bbox')
        h, w = result.metainfo['ori_shape']
        ref_boxes = np.stack([ref[:, 2].clip(0, w), ref[:, 3].clip(0, h), ref[:, 4].clip(0, w),
                              ref[:, 5].clip(0, h)], 1)  # the config clips to the image (ppdet does not)
        pred = result.pred_instances
        assert len(pred) == len(ref)
        assert (pred.labels.numpy() == 0).all()
        # from the JPEG: one grey level off at bicubic ties (see above) moves boxes <= 0.04 px (measured)
        assert np.abs(pred.bboxes.numpy() - ref_boxes).max() <= 0.1
        assert np.abs(pred.scores.numpy() - ref[:, 1]).max() <= 1e-4


def test_ppdet_constants_not_the_fp16_irs(detector, monkeypatch):
    assert abs(lcnet.HARDSIGMOID_SLOPE - 1 / 6) < 1e-6 and lcnet.HARDSIGMOID_SLOPE != IR_SLOPE
    assert lcnet.HARDSIGMOID_OFFSET == 0.5 and pico_head.SCORE_EPS == 1e-9
    x = torch.tensor([-4., -3., 0., 1.5, 3., 4.])
    torch.testing.assert_close(lcnet.hard_sigmoid(x), torch.clamp(x * 0.1666667 + 0.5, 0, 1), rtol=0, atol=0)
    # a score whose class probability underflows is sqrt(1e-9), not 0
    logits = torch.full((1, 1, 1, 1), -200.)
    assert torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(logits) + pico_head.SCORE_EPS).item() == pytest.approx(
        1e-9**0.5, rel=1e-6)
    # On the image where ppdet and the OpenVINO runtime differ most, the IR's constants reproduce OpenVINO and
    # miss ppdet; ppdet's reproduce ppdet (test_raw_predictions_match_ppdet).
    summary = json.load(open(osp.join(detector.shared_dir, 'fixtures', 'picodet', str(detector.size),
                                      'summary.json')))['images']
    stem = max(summary, key=lambda s: summary[s]['max_abs_diff_scores_vs_ov'])
    ref = detector.golden(stem, 'raw')
    ppdet_sigmoid = lcnet.hard_sigmoid
    monkeypatch.setattr(lcnet, 'hard_sigmoid', lambda t: ppdet_sigmoid(t, slope=IR_SLOPE))
    monkeypatch.setattr(pico_head, 'SCORE_EPS', 0.)
    with torch.no_grad():
        boxes, scores = detector.model.bbox_head.decode(*detector.model._forward(torch.from_numpy(
            detector.golden(stem, 'input'))))
    assert np.abs(scores.numpy() - ref['ov_scores']).max() <= 1e-5
    assert np.abs(boxes.numpy() - ref['ov_boxes']).max() <= 5e-3
    assert np.abs(scores.numpy() - ref['scores']).max() > 1e-4


def _box(x1, y1, x2, y2):
    return [float(x1), float(y1), float(x2), float(y2)]


def test_multiclass_nms_hand_made_case():
    boxes = torch.tensor([
        _box(0, 0, 10, 10),  # 0  A 0.9: kept
        _box(2, 0, 12, 10),  # 1  B 0.8: IoU(A) = 80/120 > 0.6 -> suppressed
        _box(4, 0, 14, 10),  # 2  C 0.7: IoU(A) = 0.43; IoU(B) 0.67 does not count, B is gone -> kept
        _box(0, 0, 10, 6),  # 3  D 0.6: IoU(A) = 60/100 = 0.6 exactly -> kept (suppress only above)
        _box(0, 0, 10, 6.25),  # 4  E 0.6: ties D, ranks after it (stable); IoU(A) = 0.625 -> suppressed
        _box(200, 200, 210, 210),  # 5  G 0.5: ties F, lower index -> first
        _box(100, 100, 110, 110),  # 6  F 0.5
        _box(300, 300, 310, 310),  # 7  H 0.025 == score_threshold -> not a candidate (strict >)
        _box(400, 400, 400, 400),  # 8  I 0.4: zero area, alone -> kept
        _box(400, 400, 400, 400),  # 9  J 0.3: zero area on I: IoU 0/0 = NaN -> suppressed, as Paddle
    ])
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5, 0.025, 0.4, 0.3]])
    dets, index = multiclass_nms(boxes, scores, score_threshold=0.025, nms_top_k=1000, keep_top_k=100,
                                 nms_threshold=0.6)
    assert index.tolist() == [0, 2, 3, 5, 6, 8]
    torch.testing.assert_close(dets[:, 1], scores[0, index])
    torch.testing.assert_close(dets[:, 2:], boxes[index])
    assert (dets[:, 0] == 0).all()
    # a batch is ppdet's (rows of all images, count per image)
    rows, counts = batched_multiclass_nms(torch.stack([boxes, boxes]), torch.stack([scores, scores * 0]),
                                          score_threshold=0.025, nms_top_k=1000, keep_top_k=100, nms_threshold=0.6)
    assert counts.tolist() == [6, 0]
    torch.testing.assert_close(rows, dets, rtol=0, atol=0)
    # nms_top_k cuts candidates before NMS
    assert multiclass_nms(boxes, scores, score_threshold=0.025, nms_top_k=3, nms_threshold=0.6)[1].tolist() == [0, 2]
    # keep_top_k ranks all classes by score, then the rows are grouped by class (ascending)
    two = torch.zeros(2, len(boxes))
    two[0, 0] = 0.9
    two[1, 2], two[1, 6], two[1, 5] = 0.95, 0.5, 0.85
    dets, index = multiclass_nms(boxes, two, score_threshold=0.025, keep_top_k=3, nms_threshold=0.6)
    assert dets[:, 0].tolist() == [0, 1, 1] and index.tolist() == [0, 2, 5]
    torch.testing.assert_close(dets[:, 1], torch.tensor([0.9, 0.95, 0.85]))
    # normalized=False measures w + 1 by h + 1 (pixel boxes); True measures w * h
    pair = torch.tensor([_box(0, 0, 9, 9), _box(0, 0, 9, 5)])
    assert box_iou_paddle(pair, normalized=False)[0, 1].item() == np.float32(0.6)
    assert box_iou_paddle(pair, normalized=True)[0, 1].item() == np.float32(45 / 81)


def _paddle_nms_loop(boxes, scores, score_threshold, nms_threshold, top_k):
    """Paddle's NMSFast transcribed literally (float32 scalars), as the reference for the vectorised one."""
    f = np.float32
    cand = sorted((i for i in range(len(scores)) if scores[i] > f(score_threshold)), key=lambda i: -scores[i])
    cand = cand[:top_k]
    kept = []
    for i in cand:
        keep = True
        for j in kept:
            a, b = boxes[i], boxes[j]
            if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
                iou = f(0)
            else:
                iw = min(a[2], b[2]) - max(a[0], b[0])
                ih = min(a[3], b[3]) - max(a[1], b[1])
                inter = iw * ih
                area_a = (a[2] - a[0]) * (a[3] - a[1])
                area_b = (b[2] - b[0]) * (b[3] - b[1])
                with np.errstate(invalid='ignore', divide='ignore'):
                    iou = inter / (area_a + area_b - inter)
            keep = bool(iou <= f(nms_threshold))
            if not keep:
                break
        if keep:
            kept.append(i)
    return kept


def test_multiclass_nms_equals_paddle_loop():
    rng = np.random.default_rng(0)
    for _ in range(5):
        xy = rng.uniform(0, 200, (300, 2)).astype(np.float32)
        wh = rng.uniform(5, 60, (300, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + wh], 1)
        scores = np.round(rng.uniform(0, 1, 300), 2).astype(np.float32)  # many ties
        ref = _paddle_nms_loop(boxes, scores, 0.025, 0.6, 200)
        _, index = multiclass_nms(torch.from_numpy(boxes), torch.from_numpy(scores)[None], score_threshold=0.025,
                                  nms_top_k=200, keep_top_k=-1, nms_threshold=0.6)
        assert index.tolist() == ref


@pytest.mark.parametrize('size', sorted(SIZES.values()))
def test_weight_names_round_trip(shared_dir, size):
    from weight_convert import families
    ppdet = read_pdparams(_folded_pdparams(shared_dir, size))
    ours = families.to_mmpose('picodet', ppdet)  # the converter's family interface
    assert not any(k.startswith('head.') for k in ours)
    levels = 4
    assert len(ours) == len(ppdet) - levels * 2 * 2 - levels  # cls/reg weight+bias aliases, unused scales
    back = families.from_mmpose('picodet', ours)
    assert set(back) == set(ppdet)
    for k in ppdet:
        np.testing.assert_array_equal(back[k], ppdet[k])
    bad = dict(ppdet, **{'head.head_cls0.bias': ppdet['head.head_cls0.bias'] + 1})
    with pytest.raises(ValueError, match='head_cls_list.0.bias'):
        to_mmpose(bad)


def test_state_dict_is_ppdets(detector):
    ours = to_mmpose(read_pdparams(_folded_pdparams(detector.shared_dir, detector.size)))
    state = {k: v for k, v in detector.model.state_dict().items() if not k.endswith('num_batches_tracked')}
    assert set(state) == set(ours)
    for k, v in ours.items():
        np.testing.assert_array_equal(state[k].numpy(), v)


def test_registered_in_mmdet_and_inference_only(detector):
    from mmdet.registry import MODELS
    for name in ('LCNet', 'LCPAN', 'PicoHeadV2', 'PicoDet', 'PPDetDataPreprocessor'):
        assert MODELS.get(name) is not None, name
    with pytest.raises(NotImplementedError, match='inference only'):
        detector.model.bbox_head.loss()
    with pytest.raises(ValueError, match='different sizes'):
        detector.model.data_preprocessor(dict(inputs=[torch.zeros(3, 8, 8), torch.zeros(3, 8, 9)]))
