#!/usr/bin/env python
"""End-to-end COCO keypoint AP with OUR PicoDet's person boxes, side by side with PaddleX's and ppdet's pipelines.

    python tools/dev/pipeline_ap.py [--shared ../shared] [--det 320 192] [--sizes 128x96 256x192]
        [--work-dir DIR] [--out table.md]

On ``../shared/data/coco_val2017_mini`` (4 images, 12 persons with keypoints):

1. our PicoDet-S pedestrian (``create_model('PicoDet-S_pedestrian_{S}')``, the official weights) writes a COCO
   detection results json of every box it outputs after NMS (score >= 0.025, as ppdet's detector eval would);
2. ``tools/test.py CONFIG CKPT --cfg-options test_dataloader.dataset.bbox_file=THAT_JSON
   test_dataloader.dataset.filter_cfg.bbox_score_thr=0.5`` (ppdet's tiny_pose ``EvalDataset.image_thre: 0.5``),
   flip on as the configs: PaddleDetection's evaluation geometry on our boxes; GT boxes as a reference row;
3. the same COCO keypoint AP (ppdet's rescoring box score x mean keypoint score > 0.2, OKS-NMS 0.9, xtcocotools)
   from pipeline outputs, PaddleX's geometry: ours (``create_pipeline``, PicoDet-320, threshold 0.5), PaddleX's
   pipeline goldens (``fixtures/paddlex/pipeline/``) and, 128x96 without flip, PaddleDetection's deploy
   ``det_keypoint_unite_infer.py`` goldens (``fixtures/ppdet_unite/``; its own crop, ``expand_crop`` x1.3).

Prints a markdown table (and writes it to ``--out``).
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import os.path as osp
import sys
import tempfile
import time

import numpy as np

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

SIZES = {'128x96': (96, 128), '256x192': (192, 256)}
DET_SIZES = (320, 192)
#: ppdet configs/keypoint/tiny_pose/tinypose_*.yml, EvalDataset ``image_thre`` (detector boxes kept at >= 0.5)
PPDET_IMAGE_THRE = 0.5
#: PaddleX's pipeline threshold (boxes kept at > 0.5); ppdet's deploy script uses the same 0.5
PIPELINE_DET_THRESHOLD = 0.5
CONFIGS = {'128x96': 'configs/pp_tinypose/td-hm_pp-tinypose_4xb512-420e_aic-coco-128x96.py',
           '256x192': 'configs/pp_tinypose/td-hm_pp-tinypose_4xb128-420e_aic-coco-256x192.py'}
STATS = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR')


class Paths:
    """Where the inputs lie under ``shared``."""

    def __init__(self, shared):
        self.shared = shared
        self.data = osp.join(shared, 'data', 'coco_val2017_mini')
        self.ann = osp.join(self.data, 'test_coco.json')

    def det_weights(self, s):
        return osp.join(self.shared, 'fixtures', 'picodet', f'picodet_s_{s}_lcnet_pedestrian_folded.pdparams')

    def kpt_pdparams(self, size):
        return osp.join(self.shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams')

    def kpt_model_dir(self, size):
        return osp.join(self.shared, 'weights', 'paddlex_inference_enhance', f'PP-TinyPose_{size}')

    def paddlex_golden(self, size, flip):
        return osp.join(self.shared, 'fixtures', 'paddlex', 'pipeline', f'picodet320_tinypose{size}',
                        'flip' if flip else 'noflip')

    def unite_golden(self):
        return osp.join(self.shared, 'fixtures', 'ppdet_unite', 'picodet320_tinypose128x96_results.json')

    def images(self):
        """``[(image id, stem, path)]`` of the annotation file, in its order."""
        with open(self.ann) as f:
            imgs = json.load(f)['images']
        return [(im['id'], osp.splitext(im['file_name'])[0], osp.join(self.data, im['file_name'])) for im in imgs]


# ---------------------------------------------------------------------------------------------------- detector
def write_detections(det_model, images, out):
    """Run ``det_model`` (a :class:`~kpt_plugin.inference.detector.DetectorPredictor`) on ``images``
    (``[(id, stem, path)]``) and write every box after NMS as COCO detection results (xywh) to ``out``.

    Returns:
        list[dict]: the detections written.
    """
    import cv2

    from weight_convert.io import atomic_write_json
    dets = []
    for img_id, _, path in images:
        (d, ) = det_model.detect([cv2.imread(path, cv2.IMREAD_COLOR)])
        for _, score, x1, y1, x2, y2 in d.astype(np.float64).tolist():
            dets.append(dict(image_id=img_id, category_id=1, bbox=[x1, y1, x2 - x1, y2 - y1], score=score))
    atomic_write_json(out, dets)
    return dets


# ---------------------------------------------------------------------------------------------------- tools/test.py
def load_test_script():
    spec = importlib.util.spec_from_file_location('kpt_tools_test', osp.join(_REPO, 'tools', 'test.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_py_argv(paths, size, ckpt, work_dir, bbox_file=None, flip=True):
    """The ``tools/test.py`` command line (without the interpreter) for one evaluation."""
    opts = [f'test_dataloader.dataset.data_root={paths.data}', 'test_dataloader.dataset.ann_file=test_coco.json',
            'test_dataloader.dataset.data_prefix.img=', f'test_evaluator.outfile_prefix={work_dir}/res',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            # mmengine keys its logger/visualizer singletons by experiment name: one per run in one process
            f'experiment_name=pipeline_ap_{os.getpid()}_{time.time_ns()}']
    if bbox_file:
        opts += [f'test_dataloader.dataset.bbox_file={bbox_file}',
                 f'test_dataloader.dataset.filter_cfg.bbox_score_thr={PPDET_IMAGE_THRE}']
    argv = [osp.join(_REPO, CONFIGS[size]), ckpt, '--work-dir', work_dir, '--out', osp.join(work_dir, 'metrics.json')]
    return argv + ([] if flip else ['--no-flip']) + ['--cfg-options'] + opts


def run_test_py(script, argv, quiet=True):
    """Run ``tools/test.py``'s ``main(argv)``; returns its metrics json (``metrics`` with short names)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        rc = script.main(argv)
    if rc != 0:
        raise RuntimeError(f'tools/test.py exited with {rc}:\n{sink.getvalue()[-2000:]}')
    with open(argv[argv.index('--out') + 1]) as f:
        res = json.load(f)
    res['metrics'] = {k.split('/', 1)[-1]: v for k, v in res['metrics'].items()}
    return res


# ---------------------------------------------------------------------------------------------------- pipelines
def persons_from_pipeline(results, images):
    """``{image id: [(keypoints (17, 3), det_score, box xyxy)]}`` of PaddleX-style pipeline results (dicts)."""
    out = {}
    for (img_id, _, _), res in zip(images, results):
        out[img_id] = [(np.asarray(b['keypoints'], np.float64), float(b['det_score']),
                        np.asarray(b['coordinate'], np.float32)) for b in res['boxes']]
    return out


def paddlex_golden_results(folder, images):
    res = []
    for _, stem, _ in images:
        with open(osp.join(folder, f'{stem}.json')) as f:
            res.append(json.load(f))
    return res


def persons_from_unite(path, paddlex_persons, images):
    """ppdet deploy goldens as persons; their json has no detector score, so each person takes the score of the
    same detection in PaddleX's golden (same detector, same 0.5 threshold, same order: checked)."""
    with open(path) as f:
        rows = {osp.splitext(r[0])[0]: r for r in json.load(f)}
    out = {}
    for img_id, stem, _ in images:
        _, rects, (kpts, _) = rows[stem]
        ref = paddlex_persons[img_id]
        if len(rects) != len(ref):
            raise ValueError(f'{stem}: ppdet deploy kept {len(rects)} persons, PaddleX {len(ref)}')
        for rect, (_, _, box) in zip(rects, ref):
            # expand_crop keeps the box centre (up to int truncation)
            if np.abs(np.add(rect[:2], rect[2:]) / 2 - (box[:2] + box[2:]) / 2).max() > 2:
                raise ValueError(f'{stem}: ppdet deploy crop {rect} does not match PaddleX box {box.tolist()}')
        out[img_id] = [(np.asarray(k, np.float64), s, b) for k, (_, s, b) in zip(kpts, ref)]
    return out


def pipeline_dets(persons, input_size):
    """COCO keypoint results of ``persons`` (``{image id: [(keypoints, det_score, box)]}``) scored as tools/test.py
    scores its instances: ppdet's rescoring, OKS-NMS 0.9 (area of the box's PaddleX crop)."""
    from kpt_plugin.evaluation.pp_coco_metric import COCO_SIGMAS, pp_oks_nms, pp_rescore
    from kpt_plugin.inference.paddlex_geometry import box_center_scale
    dets = []
    for img_id, people in persons.items():
        inst = []
        for kp, det_score, box in people:
            _, scale = box_center_scale(box, input_size)
            inst.append(dict(keypoints=kp, score=pp_rescore(kp[:, 2], det_score), area=float(np.prod(scale))))
        for k in pp_oks_nms(inst, 0.9, COCO_SIGMAS):
            dets.append(dict(image_id=img_id, category_id=1, keypoints=inst[k]['keypoints'].reshape(-1).tolist(),
                             score=inst[k]['score']))
    return dets


def coco_keypoint_eval(ann_file, dets):
    """xtcocotools COCOeval (keypoints, ppdet's sigmas) of a results list: ``(10 numbers by name, the COCOeval)``."""
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    from kpt_plugin.evaluation.pp_coco_metric import COCO_SIGMAS, STATS_NAMES
    with contextlib.redirect_stdout(io.StringIO()), tempfile.TemporaryDirectory() as tmp:
        gt = COCO(ann_file)
        path = osp.join(tmp, 'dets.json')
        with open(path, 'w') as f:
            json.dump(dets, f)
        ev = COCOeval(gt, gt.loadRes(path), 'keypoints', COCO_SIGMAS)
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STATS_NAMES, (float(v) for v in ev.stats))), ev


def keypoint_ap(ann_file, persons, input_size):
    """COCO keypoint AP of pipeline ``persons`` (see :func:`pipeline_dets`); the 10 numbers and ``persons`` kept."""
    dets = pipeline_dets(persons, input_size)
    stats, _ = coco_keypoint_eval(ann_file, dets)
    return dict(stats, persons=len(dets))


def decision_margins(ann_file, dets):
    """How far the AP is from changing: the smallest distance of any detection/GT OKS to one of COCO's 10 OKS
    thresholds, and the smallest gap between two detection scores (the AP is a step function of both)."""
    _, ev = coco_keypoint_eval(ann_file, dets)
    oks = np.concatenate([np.ravel(v) for v in ev.ious.values() if len(v)])
    thr = np.asarray(ev.params.iouThrs)
    scores = np.sort([d['score'] for d in dets])
    return dict(oks=float(np.abs(oks[:, None] - thr[None]).min()),
                score=float(np.diff(scores).min()) if len(scores) > 1 else float('inf'))


def ap_band(ann_file, dets, eps_px, score_tol=1e-4, max_critical=12):
    """The range of AP that keypoints moved by up to ``eps_px`` and scores by up to ``score_tol`` can give.

    The AP is a step function: it changes only when a detection/GT OKS crosses one of the 10 thresholds or two
    scores swap. An OKS within ``eps_px * oks_sensitivity`` of a threshold is *critical*: the AP is recomputed with
    every critical OKS on either side (each independently: a superset of what real perturbations reach).

    Returns:
        dict: ``ap`` (as given), ``low``, ``high``, ``critical`` (number of critical OKS values), ``oks_margin``,
        ``score_margin``.

    Raises:
        ValueError: two scores closer than ``2 * score_tol`` (their order, hence the AP, is not determined), or
            more than ``max_critical`` critical OKS values.
    """
    import itertools
    stats, ev = coco_keypoint_eval(ann_file, dets)
    margins = decision_margins(ann_file, dets)
    if margins['score'] <= 2 * score_tol:
        raise ValueError(f'two detection scores differ by {margins["score"]:.2g} <= 2 x {score_tol}: the AP of '
                         'this set is not determined by its tolerance')
    delta = eps_px * oks_sensitivity(ann_file)
    thr = np.asarray(ev.params.iouThrs)
    critical = []  # (key, index, the value just below / above its nearest threshold)
    for key, m in ev.ious.items():
        m = np.asarray(m)
        for idx in zip(*np.nonzero(np.abs(m[..., None] - thr).min(-1) < delta)) if m.size else ():
            t = thr[np.abs(thr - m[idx]).argmin()]
            critical.append((key, idx, (t - 1e-9, t + 1e-9)))
    if len(critical) > max_critical:
        raise ValueError(f'{len(critical)} OKS values lie within {delta:.2g} of a threshold: no useful band')
    p = ev.params
    aps = []
    for sides in itertools.product((0, 1), repeat=len(critical)):
        for (key, idx, vals), side in zip(critical, sides):
            ev.ious[key][idx] = vals[side]
        ev.evalImgs = [ev.evaluateImg(img, cat, rng, p.maxDets[-1]) for cat in p.catIds for rng in p.areaRng
                       for img in p.imgIds]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
            ev.summarize()
        aps.append(float(ev.stats[0]))
    return dict(ap=stats['AP'], low=min(aps), high=max(aps), critical=len(critical), oks_margin=margins['oks'],
                score_margin=margins['score'])


def oks_sensitivity(ann_file):
    """Upper bound of |dOKS| per pixel of keypoint error (every joint moved by that much) over the GT persons.

    OKS = mean over joints of exp(-d^2 / (2 s_k^2)) with s_k = 2 sigma_k sqrt(area) (COCO's definition; ppdet's
    float64 sigmas); |d/dd exp(-d^2 / 2s^2)| <= 1 / (s sqrt(e)), so the mean moves by at most
    mean_k 1 / (s_k sqrt(e)) per pixel.
    """
    from kpt_plugin.evaluation.pp_coco_metric import COCO_SIGMAS
    with open(ann_file) as f:
        anns = [a for a in json.load(f)['annotations'] if a.get('num_keypoints', 0) > 0 and not a.get('iscrowd')]
    area = min(float(a['area']) for a in anns)
    return float(np.mean(1.0 / (2 * COCO_SIGMAS * np.sqrt(area) * np.sqrt(np.e))))


def our_pipeline_results(paths, images, size, flip, det_size=320):
    import kpt_plugin
    pipe = kpt_plugin.create_pipeline('human_keypoint_detection', det_model=f'PicoDet-S_pedestrian_{det_size}',
                                      det_model_dir=paths.det_weights(det_size),
                                      kpt_model_dir=paths.kpt_model_dir(size), kpt_model=f'PP-TinyPose_{size}',
                                      flip=flip, det_threshold=PIPELINE_DET_THRESHOLD, device='cpu')
    return [dict(r) for r in pipe.predict([p for _, _, p in images], errors='raise')]


# ---------------------------------------------------------------------------------------------------- the table
def convert_kpt(paths, size, out):
    from weight_convert.convert import convert
    if not osp.isfile(out):
        convert(paths.kpt_pdparams(size), out, arch=f'PP-TinyPose_{size}')
    return out


def row(source, boxes, size, flip, stats, persons):
    return [source, boxes, size, 'on' if flip else 'off'] + [f'{stats[k]:.3f}' for k in STATS] + [str(persons)]


def markdown(rows):
    head = ['source', 'boxes', 'size', 'flip', *STATS, 'persons']
    return '\n'.join(['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
                     + ['| ' + ' | '.join(r) + ' |' for r in rows])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(_REPO), 'shared')))
    p.add_argument('--det', nargs='+', type=int, default=list(DET_SIZES), choices=DET_SIZES)
    p.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    p.add_argument('--work-dir', default=None, help='keep the detections / results here (default: a temp dir)')
    p.add_argument('--out', default=None, help='also write the markdown table here')
    args = p.parse_args(argv)
    import kpt_plugin
    paths = Paths(args.shared)
    images = paths.images()
    script = load_test_script()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or tmp
        os.makedirs(work, exist_ok=True)
        det_files = {}
        for s in args.det:
            det = kpt_plugin.create_model(f'PicoDet-S_pedestrian_{s}', model_dir=paths.det_weights(s), device='cpu')
            det_files[s] = osp.join(work, f'picodet{s}_dets.json')
            n = len(write_detections(det, images, det_files[s]))
            print(f'PicoDet-{s}: {n} boxes (score >= 0.025) -> {det_files[s]}')
        for size in args.sizes:
            ckpt = convert_kpt(paths, size, osp.join(work, f'pp_tinypose_{size}.pth'))
            for label, bbox_file in [('GT', None)] + [(f'ours PicoDet-{s}, score >= {PPDET_IMAGE_THRE}', f)
                                                      for s, f in det_files.items()]:
                run_dir = osp.join(work, f'test_{size}_{"gt" if bbox_file is None else osp.basename(bbox_file)[:-5]}')
                argv_ = test_py_argv(paths, size, ckpt, run_dir, bbox_file)
                print('$ python tools/test.py ' + ' '.join(argv_), flush=True)
                res = run_test_py(script, argv_)
                with open(osp.join(run_dir, 'res.keypoints.json')) as f:
                    kept = len(json.load(f))
                rows.append(row('tools/test.py (ppdet eval geometry)', label, size, True, res['metrics'], kept))
            for flip in (True, False):
                ours = persons_from_pipeline(our_pipeline_results(paths, images, size, flip), images)
                golden = persons_from_pipeline(paddlex_golden_results(paths.paddlex_golden(size, flip), images),
                                               images)
                for source, persons in (('ours create_pipeline', ours), ('PaddleX 3.7.2 pipeline (golden)', golden)):
                    st = keypoint_ap(paths.ann, persons, SIZES[size])
                    rows.append(row(source, f'PicoDet-320, score > {PIPELINE_DET_THRESHOLD}', size, flip, st,
                                    st['persons']))
                if size == '128x96' and not flip:
                    st = keypoint_ap(paths.ann, persons_from_unite(paths.unite_golden(), golden, images), SIZES[size])
                    rows.append(row('ppdet deploy det_keypoint_unite (golden)', 'PicoDet-320, score > 0.5', size,
                                    flip, st, st['persons']))
    table = markdown(rows)
    print(table)
    if args.out:
        from weight_convert.io import atomic_write_text
        atomic_write_text(args.out, table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
