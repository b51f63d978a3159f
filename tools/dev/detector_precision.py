#!/usr/bin/env python
"""Accuracy cost of reduced precision for the detector and the whole pipeline, as markdown tables.

    OMP_NUM_THREADS=2 python tools/dev/detector_precision.py [--shared ../shared] [--threads 2] [--det 320 192]

1. Boxes: PicoDet-S pedestrian fp32 (torch) against bf16 (``torch.autocast``: emulated on CPUs without bf16, an
   estimate of OpenVINO's bf16 hint) and int8 (ONNX Runtime's static quantization of our graph, conv only, the
   heads and the box decoding fp32, calibrated on the default set; the product refuses it for the detector, this
   is why), on ONNX Runtime and OpenVINO, on every image of ``../shared/data/coco_val2017_mini`` and ``demo``,
   persons above PaddleX's 0.5: persons matched greedily by IoU >= 0.5; missed / extra persons, box corner shift
   (image px: mean / p99 / max) and |score difference| (mean / max) of the matched ones.
2. Pipeline AP (``tools/dev/pipeline_ap.py``'s scoring: COCO keypoint AP on coco_val2017_mini with the pipeline's
   own boxes, PicoDet 320, no flip): fp32, bf16 (both models, emulated) and ``precision='int8'`` (the keypoint
   model int8, the detector fp32); keypoint shift vs fp32 on the persons both find.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, _REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

THRESHOLD = 0.5


def images(shared):
    """Every fixture image path (coco_val2017_mini, then demo)."""
    out = []
    for sub in ('coco_val2017_mini', 'demo'):
        folder = osp.join(shared, 'data', sub)
        out += [osp.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith('.jpg')]
    return out


def iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def match(ref, other):
    """Greedy IoU >= 0.5 matching of (K, 6) detections: ``(pairs [(i, j)], missed, extra)``."""
    if not len(ref) or not len(other):
        return [], len(ref), len(other)
    m = iou(ref[:, 2:6], other[:, 2:6])
    pairs, used = [], set()
    for i in range(len(ref)):
        order = [j for j in np.argsort(-m[i]) if j not in used and m[i, j] >= 0.5]
        if order:
            pairs.append((i, order[0]))
            used.add(order[0])
    return pairs, len(ref) - len(pairs), len(other) - len(used)


def int8_graphs(det, work, threads):
    """``{label: int8 ONNX path}`` of the detector's fp32 graph (batch 1), calibrated on the default set: every
    conv (the heads and the decoding fp32), and only the convs whose input channels' ranges are within 3x of each
    other, their outputs not quantised (the gentlest int8 that still quantises the dense convs' inputs)."""
    import cv2
    import onnx

    from kpt_plugin.inference import quantize
    from kpt_plugin.models.detection.preprocess import preprocess_image
    fp32 = det.use_onnxruntime(threads)._net._onnx(1)
    calib = np.concatenate([preprocess_image(cv2.imread(osp.join(f, n)), det.input_size[0])[0]
                            for f in quantize.default_calibration() for n in sorted(os.listdir(f))
                            if n.endswith('.jpg')])
    model = onnx.load(fp32)
    tail = quantize._head_nodes(model, every_path=True)
    convs = [n for n in model.graph.node if n.op_type == 'Conv' and n.name not in tail]
    peak = quantize._channel_max(model, sorted({n.input[0] for n in convs}), calib)
    wide = [n.name for n in convs if peak[n.input[0]].max() > 3 * np.median(peak[n.input[0]])]
    out = {}
    for label, exclude, extra in (('int8, every conv', tail, None),
                                  (f'int8, {len(convs) - len(wide)} of {len(convs)} convs, outputs fp32', tail + wide,
                                   dict(OpTypesToExcludeOutputQuantization=['Conv']))):
        path = osp.join(work, f'det{det.input_size[0]}-{len(out)}.onnx')
        quantize.quantize_onnx(fp32, path, calib, op_types=['Conv'], exclude=exclude, extra_options=extra)
        out[label] = path
    return out


class Bf16Emulation:
    """The network under ``torch.autocast(bfloat16)`` (emulated on CPUs without bf16: an estimate of OpenVINO's
    bf16 hint, which also keeps some ops fp32)."""

    def __init__(self, run):
        self.inner = run

    def run(self, x):
        import torch
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
            return tuple(t.float() for t in self.inner(x))


def box_table(shared, det_sizes, threads, work):
    import cv2
    import onnxruntime as ort

    import kpt_plugin
    from kpt_plugin._compat import openvino_core
    imgs = [cv2.imread(p) for p in images(shared)]
    rows = ['| detector | precision / runtime | persons fp32 | missed | extra | corner shift mean / p99 / max px '
            '| |score diff| mean / max |', '|---|---|---|---|---|---|---|']
    for s in det_sizes:
        weights = osp.join(shared, 'fixtures', 'picodet', f'picodet_s_{s}_lcnet_pedestrian_folded.pdparams')
        name = f'PicoDet-S_pedestrian_{s}'

        def make(**kw):
            return kpt_plugin.create_model(name, model_dir=weights, device='cpu', **kw)

        ref = make()
        fp32 = [d[d[:, 1] > THRESHOLD] for d in ref.detect(imgs, min_score=THRESHOLD)]
        variants = {}
        emulated = make()
        emulated._net = Bf16Emulation(emulated._fast.forward)
        variants['bf16, torch autocast (emulated)'] = emulated
        for label, path in int8_graphs(make(), work, threads).items():
            det = make().use_onnxruntime(threads)
            det._net.sessions[1] = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
            variants[f'{label} / onnxruntime'] = det
            det = make().use_openvino(threads)
            core = openvino_core()
            det._net.requests[1] = core.compile_model(core.read_model(path), 'CPU', det._net.config
                                                      ).create_infer_request()
            variants[f'{label} / openvino'] = det
        for label, det in variants.items():
            other = [det.detect([img], min_score=THRESHOLD)[0] for img in imgs]
            other = [d[d[:, 1] > THRESHOLD] for d in other]
            shift, dscore, missed, extra = [], [], 0, 0
            for a, b in zip(fp32, other):
                pairs, mi, ex = match(a, b)
                missed, extra = missed + mi, extra + ex
                for i, j in pairs:
                    shift += np.abs(a[i, 2:6] - b[j, 2:6]).tolist()
                    dscore.append(abs(float(a[i, 1] - b[j, 1])))
            shift = np.asarray(shift) if shift else np.full(1, np.nan)
            dscore = dscore or [np.nan]
            rows.append(f'| {s} | {label} | {sum(map(len, fp32))} | {missed} | {extra} | {np.mean(shift):.2f} / '
                        f'{np.percentile(shift, 99):.2f} / {np.max(shift):.2f} | {np.mean(dscore):.4f} / '
                        f'{np.max(dscore):.4f} |')
            print(rows[-1], flush=True)
    return rows


def pipeline_table(shared, threads):
    import pipeline_ap
    from precision_ap import bf16_emulation

    import kpt_plugin
    paths = pipeline_ap.Paths(shared)
    imgs = paths.images()
    size = '128x96'
    input_size = pipeline_ap.SIZES[size]
    kw = dict(det_model='PicoDet-S_pedestrian_320', det_model_dir=paths.det_weights(320),
              kpt_model=f'PP-TinyPose_{size}', kpt_model_dir=paths.kpt_model_dir(size), flip=False, device='cpu',
              det_threshold=THRESHOLD)

    def run(pipe):
        res = [dict(r) for r in pipe.predict([p for _, _, p in imgs], errors='raise')]
        return pipeline_ap.persons_from_pipeline(res, imgs)

    variants = {'fp32 (torch)': run(kpt_plugin.create_pipeline(**kw))}
    pipe = kpt_plugin.create_pipeline(**kw)
    pipe.det_model._net = Bf16Emulation(pipe.det_model._fast.forward)
    pipe.kpt_model.runner = bf16_emulation(pipe.kpt_model)
    variants['bf16 both, torch autocast (emulated)'] = run(pipe)
    for backend in ('onnxruntime', 'openvino'):
        pipe = kpt_plugin.create_pipeline(**kw, backend=backend, precision='int8',
                                          hpi_config=dict(backend_config=dict(cpu_num_threads=threads)))
        variants[f"precision='int8' (keypoints int8, detector fp32) / {backend}"] = run(pipe)
    ref = variants['fp32 (torch)']
    rows = [f'| pipeline (PicoDet 320 -> TinyPose {size}, no flip) | AP | AP .5 | persons | keypoint shift vs fp32 '
            'mean / p99 / max px |', '|---|---|---|---|---|']
    for label, persons in variants.items():
        ap = pipeline_ap.keypoint_ap(paths.ann, persons, input_size)
        shift = []
        for img_id, people in persons.items():
            a = np.array([np.r_[0, s, b] for _, s, b in ref[img_id]], np.float32).reshape(-1, 6)
            b = np.array([np.r_[0, s, bb] for _, s, bb in people], np.float32).reshape(-1, 6)
            for i, j in match(a, b)[0]:
                shift += np.linalg.norm(ref[img_id][i][0][:, :2] - people[j][0][:, :2], axis=-1).tolist()
        shift = np.asarray(shift)
        rows.append(f'| {label} | {ap["AP"]:.3f} | {ap["AP .5"]:.3f} | {ap["persons"]} | {shift.mean():.2f} / '
                    f'{np.percentile(shift, 99):.2f} / {shift.max():.2f} |')
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(_REPO), 'shared')))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--det', nargs='+', type=int, default=[320, 192], choices=(320, 192))
    p.add_argument('--no-pipeline', action='store_true', help='the box table only')
    args = p.parse_args(argv)
    if not osp.isdir(osp.join(args.shared, 'data')):
        raise SystemExit(f'error: {args.shared}/data not found: this tool needs ../shared (or --shared)')
    import torch
    torch.set_num_threads(args.threads)
    from kpt_plugin.inference.runtime.tuning import cpu_flags, cpu_model
    print(f'CPU: {cpu_model()} ({", ".join(cpu_flags())}); {args.threads} threads\n')
    import tempfile
    with tempfile.TemporaryDirectory() as work:
        rows = box_table(args.shared, args.det, args.threads, work)
    if not args.no_pipeline:
        rows += [''] + pipeline_table(args.shared, args.threads)
    print('\n' + '\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
