#!/usr/bin/env python
"""COCO keypoint AP of ``create_model(...).predict`` with GT boxes, per crop geometry (PaddleX vs ppdet eval).

    python tools/dev/geometry_ap.py [--shared ../shared]

GT person boxes of ``../shared/data/coco_val2017_mini/test_coco.json`` as ppdet's eval reads them (clipped,
pixel-inclusive), ppdet's rescoring (box score 1) and OKS-NMS 0.9, xtcocotools' COCOeval: the ``ppdet`` rows must
equal PaddleDetection's own eval (``fixtures/enhance/results/*.txt``), the ``paddlex`` rows show what PaddleX's
geometry costs or gains on the same boxes. Prints a markdown table.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, _REPO)


def gt_boxes(data_dir):
    with open(osp.join(data_dir, 'test_coco.json')) as f:
        coco = json.load(f)
    imgs = {i['id']: i for i in coco['images']}
    boxes = {}
    for a in coco['annotations']:
        if a['num_keypoints'] == 0:
            continue
        im = imgs[a['image_id']]
        x, y, w, h = a['bbox']
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(im['width'] - 1, x1 + max(0, w - 1)), min(im['height'] - 1, y1 + max(0, h - 1))
        boxes.setdefault(im['id'], (im['file_name'], []))[1].append([x1, y1, x2, y2])
    return boxes


def coco_ap(model, data_dir, boxes):
    import numpy as np
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    from kpt_plugin.evaluation.pp_coco_metric import COCO_SIGMAS, pp_oks_nms, pp_rescore
    from kpt_plugin.inference.preprocess import box_center_scale
    ids = sorted(boxes)
    results = list(model.predict([osp.join(data_dir, boxes[i][0]) for i in ids], bboxes=[boxes[i][1] for i in ids]))
    dets = []
    for img_id, res in zip(ids, results):
        inst = []
        for person, box in zip(res['kpts'], boxes[img_id][1]):
            kp = np.asarray(person['keypoints'], np.float32)
            _, scale = box_center_scale(box, model.input_size)
            inst.append(dict(keypoints=kp, score=pp_rescore(kp[:, 2], 1.0), area=float(np.prod(scale * 200))))
        for k in pp_oks_nms(inst, 0.9, COCO_SIGMAS):
            dets.append(dict(image_id=img_id, category_id=1, keypoints=inst[k]['keypoints'].reshape(-1).tolist(),
                             score=inst[k]['score']))
    gt = COCO(osp.join(data_dir, 'test_coco.json'))
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'dets.json')
        with open(path, 'w') as f:
            json.dump(dets, f)
        ev = COCOeval(gt, gt.loadRes(path), 'keypoints', COCO_SIGMAS)
        ev.params.useSegm = None
        with open(os.devnull, 'w') as null:
            stdout, sys.stdout = sys.stdout, null
            try:
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            finally:
                sys.stdout = stdout
    return ev.stats[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=osp.join(osp.dirname(_REPO), 'shared'))
    args = p.parse_args(argv)
    import kpt_plugin
    data_dir = osp.join(args.shared, 'data', 'coco_val2017_mini')
    boxes = gt_boxes(data_dir)
    rows = ['| geometry | 128x96 flip | 128x96 no flip | 256x192 flip | 256x192 no flip |', '|---|---|---|---|---|']
    cells = {}
    for size in ('128x96', '256x192'):
        weights = osp.join(args.shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams')
        for flip in (True, False):
            for geometry in ('ppdet', 'paddlex'):
                m = kpt_plugin.create_model(f'PP-TinyPose_{size}', model_dir=weights, device='cpu', flip=flip,
                                            geometry=geometry)
                cells[geometry, size, flip] = coco_ap(m, data_dir, boxes)
    for geometry in ('ppdet', 'paddlex'):
        rows.append(f'| {geometry} | ' + ' | '.join(f'{cells[geometry, s, f]:.3f}' for s in ('128x96', '256x192')
                                                   for f in (True, False)) + ' |')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
