"""PP-TinyPose CPU inference benchmark: our PyTorch / ONNX Runtime / OpenVINO paths against the peers, in ONE run.

Times the median latency of the network (image batch -> heatmaps) for batch 1 and 8 at both input sizes with a
fixed number of threads (ours: eager, the default torch path, the onnxruntime backend and the hpip = openvino
backend, each on its own fold plan), checks every row's heatmaps against our fp32 eager reference (fp32 parity =
max |diff| <= 1e-4), and prints one table with ratios to the best fp32 peer (OpenVINO on the official IR / Paddle
Inference). Then times end-to-end ``predict`` split into load / preprocess / model / postprocess.

Peers: OpenVINO on ``../shared/weights/pp_tinypose_enhance_openvino_fp16/{size}`` with the f32 precision hint
and with its default hint (bf16 on CPUs with AMX/AVX512-BF16; reported separately with its accuracy cost), and
Paddle Inference (paddlepaddle 3.3.1, oneDNN off) on ``../shared/fixtures/random/{size}_infer`` when installed
(``pip install -r requirements/bench.txt -c requirements/constraints.txt``; same network, random weights, so its
heatmaps are not compared).
Our weights: the same official weights (``../shared/fixtures/enhance/{size}_enhance_folded.pdparams``).

Usage (from the repo root)::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_inference.py [--threads 2] [--compile] [--json out.json]
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, ROOT)

SIZES = {'128x96': (96, 128), '256x192': (192, 256)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(ROOT), 'shared')))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    p.add_argument('--batches', nargs='+', type=int, default=[1, 8])
    p.add_argument('--min-time', type=float, default=1.5, help='seconds of timed runs per cell (at least 7 runs)')
    p.add_argument('--compile', action='store_true', help='also time torch.compile (slow to compile)')
    p.add_argument('--kinds', nargs='+', default=None, help='only these runners (default: all but torch_compile)')
    p.add_argument('--no-e2e', action='store_true', help='skip the end-to-end predict timings')
    p.add_argument('--json', default=None, help='write the raw numbers here')
    # internal: one runner in a child process
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    p.add_argument('--size', default=None, help=argparse.SUPPRESS)
    p.add_argument('--ckpt', default=None, help=argparse.SUPPRESS)
    p.add_argument('--work', default=None, help=argparse.SUPPRESS)
    return p.parse_args()


def median_ms(fn, min_time, min_runs=7, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < min_runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        if len(times) >= 200:
            break
    median_ms.last_min = min(times)
    return statistics.median(times)


def machine_description(threads):
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')]
        cpu = f'{names[0]} x{len(names)} logical' if names else cpu
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, 'getloadavg') else ('?', )
    return (f'{cpu}; {threads} threads; load average {load[0]:.2f} at start; torch {torch.__version__}; '
            f'python {platform.python_version()}')


# --------------------------------------------------------------------------- runners: batch -> heatmaps
# Each runner is timed in its own process: thread pools of different runtimes in one process (OpenMP, ORT,
# TBB) spin against each other on a 2-core machine and distort each other's numbers.
RUNNERS = {
    'torch_eager': ('torch eager (MMPose model, no_grad)', False),
    'torch_default': ('ours: torch default (folds, ch-last, jit freeze)', False),
    'torch_jit': ('torch folded + TorchScript trace/freeze', False),
    'torch_compile': ('torch folded + compile (inductor, freezing)', False),
    'ort_dynamic': ('plain ONNX export, dynamic batch + ORT', False),
    'ort_static_plain': ('ONNX fixed batch, BN folded + ORT', False),
    'ort_static': ('ours: onnxruntime backend (fixed batch, all folds)', False),
    'ov_ours': ('ours: hpip = openvino backend (fixed b., OV folds)', False),
    'ov_f32': ('OpenVINO official IR, f32 hint', True),
    'ov_default': ('OpenVINO official IR, default hint', True),
    'paddle': ('Paddle Inference (oneDNN off)', True),
}


def build_runner(kind, size, batch, ckpt, work, threads, shared):
    """A callable batch -> heatmaps for one runner kind and a fixed batch size."""
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    w, h = SIZES[size]
    if kind.startswith('torch'):
        import copy
        from kpt_plugin.inference.folding import fold_for_inference
        from kpt_plugin.inference.nets import HeatmapNet, build_pose_model
        from kpt_plugin.inference.runtime.torch import TorchBackend
        from kpt_plugin.zoo import get_config_path
        pose = build_pose_model(get_config_path(f'PP-TinyPose_{size}'), ckpt)
        if kind == 'torch_default':
            return TorchBackend(pose, 'cpu')
        net = HeatmapNet(pose).eval()
        if kind == 'torch_eager':
            def f(x):
                with torch.no_grad():
                    return net(torch.from_numpy(x)).numpy()
            return f
        fold_for_inference(net)
        if kind == 'torch_jit':
            with torch.no_grad():
                mod = torch.jit.freeze(torch.jit.trace(net, torch.zeros(batch, 3, h, w)).eval())
        else:
            import torch._inductor.config as icfg
            icfg.freezing = True
            mod = torch.compile(copy.deepcopy(net))

        def g(x):
            with torch.inference_mode():
                return mod(torch.from_numpy(x)).numpy()
        return g
    if kind.startswith('ort') or kind == 'ov_ours':
        from kpt_plugin.inference.nets import build_pose_model
        from kpt_plugin.inference.onnx_export import export_onnx
        from kpt_plugin.inference.runtime.onnxruntime import OrtBackend
        from kpt_plugin.inference.runtime.openvino import OpenVinoBackend
        from kpt_plugin.zoo import get_config_path
        pose = build_pose_model(get_config_path(f'PP-TinyPose_{size}'), ckpt)
        path = osp.join(work, f'{size}_{kind}_b{batch}.onnx')
        backend = OpenVinoBackend if kind == 'ov_ours' else OrtBackend
        export_onnx(pose, path, (w, h), dynamic_batch=kind == 'ort_dynamic', batch_size=batch,
                    fold_shuffles=kind in ('ort_static', 'ov_ours'), runtime=backend.runtime)
        return backend(path, 'cpu', threads=threads)
    if kind.startswith('ov'):
        import openvino as ov
        core = ov.Core()
        model = core.read_model(osp.join(shared, 'weights', 'pp_tinypose_enhance_openvino_fp16', size, 'model.xml'))
        model.reshape({model.inputs[0].any_name: [batch, 3, h, w]})
        cfg = dict(INFERENCE_NUM_THREADS=threads, PERFORMANCE_HINT='LATENCY')
        if kind == 'ov_f32':
            cfg['INFERENCE_PRECISION_HINT'] = 'f32'
        compiled = core.compile_model(model, 'CPU', cfg)
        req = compiled.create_infer_request()
        hint = str(compiled.get_property('INFERENCE_PRECISION_HINT'))
        build_runner.note = 'runs ' + hint.replace('<Type: ', '').replace('>', '').strip("'")

        def f(x):
            req.infer({0: x})
            return req.get_output_tensor(0).data.copy()
        return f
    if kind == 'paddle':
        import paddle.inference as pi  # ImportError when paddlepaddle is not installed
        model_dir = osp.join(shared, 'fixtures', 'random', f'{size}_infer')
        cfg = pi.Config(osp.join(model_dir, 'model.json'), osp.join(model_dir, 'model.pdiparams'))
        cfg.disable_mkldnn()
        cfg.set_cpu_math_library_num_threads(threads)
        pred = pi.create_predictor(cfg)
        inp = pred.get_input_handle(pred.get_input_names()[0])
        out = pred.get_output_handle(pred.get_output_names()[0])

        def f(x):
            inp.copy_from_cpu(x)
            pred.run()
            return out.copy_to_cpu()
        return f
    raise KeyError(kind)


def worker(args):
    """Child process: time one runner kind at one size for every batch; print one JSON line."""
    import numpy as np
    crops = np.load(osp.join(args.shared, 'fixtures', 'enhance', f'{args.size}_real_crops_b8.npy'))
    w, h = SIZES[args.size]
    out = {}
    for batch in args.batches:
        x = np.ascontiguousarray(np.resize(crops, (batch, 3, h, w)))
        build_runner.note = ''
        try:
            t0 = time.perf_counter()
            fn = build_runner(args.worker, args.size, batch, args.ckpt, args.work, args.threads, args.shared)
            hm = fn(x)
            setup = time.perf_counter() - t0
        except ImportError as e:
            out[batch] = dict(ms=None, note=f'not installed ({e.name})')
            continue
        np.save(osp.join(args.work, f"{args.size}_{args.worker}_b{batch}.npy"), np.asarray(hm))
        ms = median_ms(lambda: fn(x), args.min_time)
        out[batch] = dict(ms=ms, min_ms=median_ms.last_min, setup_s=setup, note=build_runner.note)
    print('RESULT ' + json.dumps(out))


def run_worker(args, kind, size, ckpt, work):
    import subprocess
    cmd = [sys.executable, osp.abspath(__file__), '--worker', kind, '--size', size, '--ckpt', ckpt, '--work', work,
           '--threads', str(args.threads), '--shared', args.shared, '--min-time', str(args.min_time),
           '--batches'] + [str(b) for b in args.batches]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')), None)
    if line is None:
        tail = (proc.stderr or '').strip().splitlines()[-1:] or ['no output']
        return {b: dict(ms=None, note=f'failed: {tail[0][:60]}') for b in args.batches}
    return {int(k): v for k, v in json.loads(line[len('RESULT '):]).items()}


# --------------------------------------------------------------------------- main
def main():
    args = parse_args()
    if args.worker:
        if args.worker.startswith('e2e:'):
            return e2e_worker(args, args.worker[4:])
        return worker(args)
    import numpy as np
    from weight_convert.convert import convert

    desc = machine_description(args.threads)
    print(desc)
    work = tempfile.mkdtemp(prefix='kpt_bench_')
    kinds = args.kinds or [k for k in RUNNERS if k != 'torch_compile' or args.compile]
    if 'torch_eager' not in kinds:  # the fp32 parity reference
        kinds.insert(0, 'torch_eager')
    results = []
    for size in args.sizes:
        ckpt = osp.join(work, f'{size}.pth')
        convert(osp.join(args.shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), ckpt,
                f'PP-TinyPose_{size}')
        for kind in kinds:
            t0 = time.perf_counter()
            res = run_worker(args, kind, size, ckpt, work)
            label, peer = RUNNERS[kind]
            for batch, r in res.items():
                row = dict(size=size, batch=batch, kind=kind, label=label, peer=peer, **r)
                hm_path = osp.join(work, f'{size}_{kind}_b{batch}.npy')
                ref_path = osp.join(work, f'{size}_torch_eager_b{batch}.npy')
                if r.get('ms') is not None and kind != 'paddle' and osp.isfile(ref_path):
                    row['max_diff'] = float(np.abs(np.load(hm_path) - np.load(ref_path)).max())
                    row['fp32'] = row['max_diff'] <= 1e-4
                results.append(row)
            print(f'  {size} {label}: ' + ', '.join(f'b{b} {r["ms"] and round(r["ms"], 2)}' for b, r in res.items())
                  + f' ({time.perf_counter() - t0:.0f} s)', file=sys.stderr)
    print_table(results)
    print_table(results, key='min_ms')
    e2e = [] if args.no_e2e else end_to_end(args, work)
    print(f'\nload average at the end: {os.getloadavg()[0]:.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=desc, rows=results, e2e=e2e), f, indent=1)


def print_table(results, key='ms'):
    what = 'median' if key == 'ms' else 'fastest run (less sensitive to other load on the machine)'
    print(f'\nNetwork latency, {what}, ms (ratio = ms / best fp32 peer; fp32 parity = max|heatmap diff| vs '
          'eager <= 1e-4, else d= is shown)')
    cells = sorted({(r['size'], r['batch']) for r in results}, key=lambda c: (c[0] != '128x96', c[1]))
    for r in results:
        if r.get('note') and r['ms'] is not None and r['note'] not in r['label']:
            r['label'] = f"{r['label']} ({r['note'].replace('<Type: ', '').replace('>', '')})"
    labels = list(dict.fromkeys(r['label'] for r in results))
    best = {}
    for c in cells:
        peers = [r[key] for r in results if (r['size'], r['batch']) == c and r['peer'] and r.get('fp32') is not False
                 and r.get(key) is not None]
        best[c] = min(peers) if peers else None
    head = f'{"":52s}' + ''.join(f'{f"{s} b{b}":>22s}' for s, b in cells)
    print(head)
    for label in labels:
        line = f'{label[:52]:52s}'
        for c in cells:
            r = next((r for r in results if (r['size'], r['batch']) == c and r['label'] == label), None)
            if r is None or r.get(key) is None:
                line += f'{(r or {}).get("note", "-")[:21]:>22s}'
                continue
            ratio = f'{r[key] / best[c]:.2f}x' if best[c] else '-'
            flag = '' if r.get('fp32') in (True, None) else f' d={r["max_diff"]:.0e}'
            cell = f'{r[key]:.2f} ({ratio}){flag}'
            line += f'{cell:>22s}'
        print(line)


def e2e_worker(args, backend):
    """Child process: ``predict`` timings of one backend at one size; prints one JSON line."""
    import torch
    import kpt_plugin
    torch.set_num_threads(args.threads)
    data = osp.join(args.shared, 'data', 'coco_val2017_mini')
    files = sorted(osp.join(data, f) for f in os.listdir(data) if f.endswith('.jpg'))
    m = kpt_plugin.create_model(f'PP-TinyPose_{args.size}', model_dir=args.ckpt, device='cpu', backend=backend)
    rows = []
    for batch in (1, 8):
        inputs = (files * 2)[:batch] if batch == 8 else files
        for _ in range(2):  # warm-up: onnxruntime's one-time export, torch's trace on a shape's 2nd batch
            list(m.predict(inputs, batch_size=batch))
        m.reset_timings()
        for _ in range(10 if batch == 1 else 5):
            list(m.predict(inputs, batch_size=batch))
        t = m.timings
        row = {k: 1000 * t[k] / t['images'] for k in ('load', 'preprocess', 'model', 'postprocess')}
        rows.append(dict(size=args.size, backend=backend, batch=batch, **row))
    print('RESULT ' + json.dumps(rows))


def end_to_end(args, work):
    """``predict`` per image split into load / preprocess / model / postprocess (4 COCO images)."""
    import subprocess
    out = []
    print('\nEnd-to-end predict, ms per image (whole image = one person; the 4 COCO images, batch 8 = them twice)')
    print(f'{"":36s}{"load":>8s}{"pre":>8s}{"model":>8s}{"post":>8s}{"total":>8s}{"(pre+post)/model":>18s}')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), KPT_PLUGIN_HOME=osp.join(work, 'home'))
    for size in args.sizes:
        for backend in ('torch', 'onnxruntime', 'openvino'):
            cmd = [sys.executable, osp.abspath(__file__), '--worker', f'e2e:{backend}', '--size', size, '--ckpt',
                   osp.join(work, f'{size}.pth'), '--work', work, '--threads', str(args.threads), '--shared',
                   args.shared]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')), None)
            if line is None:
                print(f'{size} {backend}: failed: {(proc.stderr or "").strip().splitlines()[-1:]}')
                continue
            for row in json.loads(line[len('RESULT '):]):
                row['total'] = sum(row[k] for k in ('load', 'preprocess', 'model', 'postprocess'))
                row['ratio'] = (row['preprocess'] + row['postprocess']) / row['model']
                label = f'{size} {backend} batch {row["batch"]}'
                print(f'{label:36s}' + ''.join(f'{row[k]:8.2f}' for k in ('load', 'preprocess', 'model',
                                                                         'postprocess', 'total'))
                      + f'{row["ratio"]:17.1%}')
                out.append(row)
    return out


if __name__ == '__main__':
    main()
