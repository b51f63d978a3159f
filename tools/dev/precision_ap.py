#!/usr/bin/env python
"""Accuracy cost of reduced precision: COCO keypoint AP (GT boxes) and keypoint shift vs fp32, as a markdown table.

    OMP_NUM_THREADS=2 python tools/dev/precision_ap.py [--shared ../shared] [--threads 2]

AP: ``../shared/data/coco_val2017_mini`` with GT boxes, ppdet's eval geometry, rescoring and OKS-NMS 0.9
(``tools/dev/geometry_ap.py``'s path; the fp32 rows equal PaddleDetection's own eval), both sizes, flip on/off,
for fp32 and int8 (ONNX Runtime static quantization, :mod:`kpt_plugin.inference.quantize`, default calibration
set) on onnxruntime and openvino. Shift: ppdet's DARK decode of the int8 heatmaps vs fp32's, in image pixels, on
all fixture crops (``fixtures/enhance/{size}_real_crops_b8.npy``, 8 per size): mean / p99 / max over joints.
OpenVINO's default (bf16) hint on the official IR runs only on CPUs with AVX512-BF16/AMX; elsewhere it says so,
and the bf16 row is torch's autocast (emulated where the CPU has no bf16: an estimate).
"""
import argparse
import contextlib
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, _REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

SIZES = ('128x96', '256x192')


def shifts(a, b, meta):
    """Per-joint distance (image px) between ppdet's decode of heatmaps ``a`` and ``b``."""
    import numpy as np

    from kpt_plugin.codecs.pp_heatmap import ppdet_decode
    pa, _ = ppdet_decode(a, meta['center'], meta['scale'])
    pb, _ = ppdet_decode(b, meta['center'], meta['scale'])
    return np.linalg.norm(pa - pb, axis=-1).ravel()


#: the bf16 row where the CPU has no bf16: torch's autocast, emulated (an estimate of OpenVINO's bf16 hint, which
#: also keeps some ops fp32; to be replaced by the hint itself on an AVX512-BF16/AMX machine)
EMULATED = 'torch autocast (emulated)'


def bf16_emulation(model):
    """``model``'s folded torch net (no TorchScript: autocast does not reach into a traced graph) under
    ``torch.autocast(bfloat16)``."""
    import torch

    from kpt_plugin.inference.runtime.torch import TorchBackend
    inner = TorchBackend(model.pose_model, 'cpu', flip=model.flip, jit=False, fold_copy=True)

    def run(batch):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return inner(batch)
    return run


def official_ir_bf16(shared, size, crops):
    """Heatmaps of OpenVINO's default hint on the official IR, or None (with the reason) where it cannot run."""
    from kpt_plugin.inference.quantize import has_bf16
    if not has_bf16():
        return None, 'not run: this CPU has no AVX512-BF16/AMX (OpenVINO\'s default hint runs f32 here)'
    from kpt_plugin._compat import openvino_core
    core = openvino_core()
    xml = osp.join(shared, 'weights', 'pp_tinypose_enhance_openvino_fp16', size, 'model.xml')
    req = core.compile_model(core.read_model(xml), 'CPU').create_infer_request()
    return [req.infer({0: c[None]})[0].copy() for c in crops], None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=osp.join(osp.dirname(_REPO), 'shared'))
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--sizes', nargs='+', default=list(SIZES), choices=SIZES)
    args = p.parse_args(argv)
    import numpy as np

    import kpt_plugin
    from geometry_ap import coco_ap, gt_boxes
    data_dir = osp.join(args.shared, 'data', 'coco_val2017_mini')
    boxes = gt_boxes(data_dir)
    rows = {}
    shift_rows = []
    variants = [('fp32', 'onnxruntime'), ('int8', 'onnxruntime'), ('int8', 'openvino'), ('bf16', EMULATED)]
    for size in args.sizes:
        weights = osp.join(args.shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams')
        crops = np.load(osp.join(args.shared, 'fixtures', 'enhance', f'{size}_real_crops_b8.npy'))
        meta = np.load(osp.join(args.shared, 'fixtures', 'enhance', f'{size}_real_crops_b8_meta.npz'))
        hms = {}
        for flip in (True, False):
            for precision, backend in variants:
                emulated = backend == EMULATED
                m = kpt_plugin.create_model(f'PP-TinyPose_{size}', model_dir=weights, device='cpu', flip=flip,
                                            geometry='ppdet', backend='torch' if emulated else backend,
                                            precision='fp32' if emulated else precision,
                                            hpi_config=None if args.threads is None else
                                            dict(backend_config=dict(cpu_num_threads=args.threads)))
                if emulated:
                    m.runner = bf16_emulation(m)
                m.batch_size = len(boxes)  # one call: the crops run as batch buckets 8 + 4
                if hasattr(m.runner, 'background_export'):
                    m.runner.background_export = False  # the graph itself, not the torch stand-in
                with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints its progress
                    rows.setdefault((precision, backend), {})[size, flip] = coco_ap(m, data_dir, boxes)
                if not flip:
                    hms[precision, backend] = m.heatmaps(crops)
                if hasattr(m.runner, 'wait'):
                    m.runner.wait()  # no background export may overlap the next model's (torch allows one)
                print(f'{size} flip={flip} {precision}/{backend}: AP {rows[precision, backend][size, flip]:.4f}',
                      file=sys.stderr, flush=True)
        ref = hms['fp32', 'onnxruntime']
        for key in variants[1:]:
            d = shifts(ref, hms[key], meta)
            hm = float(np.abs(hms[key] - ref).max())
            shift_rows.append(f'| {size} | {key[0]} / {key[1]} | {d.mean():.3f} | {np.percentile(d, 99):.3f} | '
                              f'{d.max():.3f} | {hm:.3g} |')
        bf16, why = official_ir_bf16(args.shared, size, crops)
        if bf16 is None:
            shift_rows.append(f'| {size} | OpenVINO default hint (bf16), official IR | {why} | | | |')
        else:
            b = np.concatenate(bf16)
            d = shifts(ref, b, meta)
            shift_rows.append(f'| {size} | OpenVINO default hint (bf16), official IR | {d.mean():.3f} | '
                              f'{np.percentile(d, 99):.3f} | {d.max():.3f} | {float(np.abs(b - ref).max()):.3g} |')
    cols = [(s, f) for s in args.sizes for f in (True, False)]
    out = ['| precision / runtime | ' + ' | '.join(f'{s} {"flip" if f else "no flip"}' for s, f in cols) + ' |',
           '|---' * (len(cols) + 1) + '|']
    for (precision, backend), cells in rows.items():
        ref_cells = rows['fp32', 'onnxruntime']
        out.append(f'| {precision} / {backend} | ' + ' | '.join(
            f'{cells[c]:.3f}' + ('' if precision == 'fp32' else f' ({cells[c] - ref_cells[c]:+.3f})')
            for c in cols) + ' |')
    out += ['', '| size | precision / runtime | mean shift px | p99 px | max px | max heatmap diff |',
            '|---|---|---|---|---|---|'] + shift_rows
    print('\n'.join(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
