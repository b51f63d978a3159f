"""PP-TinyPose CPU inference benchmark: our PyTorch / ONNX Runtime / OpenVINO paths against the peers, in ONE run.

Times the network (image batch -> heatmaps) for batch 1 and 8 at both input sizes with a fixed number of threads:
ours (eager, the default torch path, the onnxruntime and openvino backends, what ``backend='auto'`` picks after
tuning on this machine, int8 on onnxruntime / openvino, bf16 where the CPU has it) and the peers (OpenVINO on the
official IR, f32 and default hint; Paddle Inference when installed). Every runner lives in its own process
(thread pools of different runtimes in one process spin against each other) and the runners of a cell are timed
INTERLEAVED: block A, block B, ..., A, B, ... so drift (other load, clocks) hits all alike. Each cell is timed
``--repeats`` times (3); a ratio is median ms / best fp32 peer's median ms of the same repeat, a target counts as met
only if the MEDIAN ratio over the repeats meets it, and the spread (min-max) is printed. Every row's heatmaps are
checked against our fp32 eager reference (fp32 parity = max |diff| <= 1e-4, else d= is shown).

Also printed: the machine (CPU model, ISA flags, threads), the measured matmul ceiling (torch 2048^2, fp32 and
bf16 -- bf16 is emulated and slow on CPUs without AVX512-BF16/AMX) and each row's effective GFLOP/s (FLOPs counted
from the model's convs) as a fraction of the fp32 ceiling; then end-to-end ``predict`` split into load / preprocess
/ model / postprocess with (pre+post)/model at batch 8 against the 25 % target.

Peers: OpenVINO on ``../shared/weights/pp_tinypose_enhance_openvino_fp16/{size}`` with the f32 precision hint
and with its default hint (bf16 on CPUs with AMX/AVX512-BF16; reported separately with its accuracy cost), and
Paddle Inference (paddlepaddle 3.3.1, oneDNN off) on ``../shared/fixtures/random/{size}_infer`` when installed
(``pip install -r requirements/bench.txt -c requirements/constraints.txt``; same network, random weights, so its
heatmaps are not compared).
Our weights: the same official weights (``../shared/fixtures/enhance/{size}_enhance_folded.pdparams``).

Usage (from the repo root)::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_inference.py [--threads 2] [--repeats 3] [--compile]
        [--kinds ...] [--no-e2e] [--json out.json] [--quick]
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
    p.add_argument('--batch', type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument('--min-time', type=float, default=1.5,
                   help='seconds of timed runs per runner, cell and repeat (at least 7 runs)')
    p.add_argument('--repeats', type=int, default=3, help='interleaved repeats of every cell (default 3)')
    p.add_argument('--block', type=int, default=3, help='calls per runner before switching to the next (default 3)')
    p.add_argument('--quick', action='store_true',
                   help='validation run: 128x96 only, short timing, our main rows and the OpenVINO peers')
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

    from kpt_plugin.inference.runtime.tuning import ISA_FLAGS, cpu_flags, cpu_model
    have = set(cpu_flags())
    n = os.cpu_count()
    flags = ' '.join(f'{f}{"+" if f in have else "-"}' for f in ISA_FLAGS)
    load = os.getloadavg() if hasattr(os, 'getloadavg') else ('?', )
    return (f'{cpu_model()} x{n} logical; ISA {flags}; {threads} threads; load average {load[0]:.2f} at start; '
            f'torch {torch.__version__}; python {platform.python_version()}')


def matmul_ceiling(threads, n=2048, min_time=0.5):
    """GFLOP/s of torch's n x n matmul, fp32 and bf16, with ``threads`` threads (the CPU's practical peak).

    Without native bf16 torch emulates it at well under 1 GFLOP/s (a 2048^2 product takes about a minute):
    there bf16 is measured at 512^2, once."""
    import torch
    torch.set_num_threads(threads)
    out = {}
    for name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
        k = n if name == 'fp32' or _has_bf16() else 512
        a, b = torch.randn(k, k).to(dtype), torch.randn(k, k).to(dtype)
        if k == n:
            ms = median_ms(lambda: torch.mm(a, b), min_time, min_runs=3, warmup=1)
        else:
            t0 = time.perf_counter()
            torch.mm(a, b)
            ms = (time.perf_counter() - t0) * 1e3
        out[name] = 2 * k ** 3 / (ms / 1e3) / 1e9
        out[f'{name}_n'] = k
    return out


def model_flops(size, ckpt):
    """FLOPs (2 x multiply-adds) of one crop through the model's convs and linears (unfolded, as trained)."""
    import torch
    from torch import nn

    from kpt_plugin.inference.nets import HeatmapNet, build_pose_model
    from kpt_plugin.zoo import get_config_path
    net = HeatmapNet(build_pose_model(get_config_path(f'PP-TinyPose_{size}'), ckpt)).eval()
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += 2 * out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total[0] += 2 * out.numel() * mod.in_features

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    w, h = SIZES[size]
    with torch.no_grad():
        net(torch.zeros(1, 3, h, w))
    for hk in hooks:
        hk.remove()
    return total[0]


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
    'ov_ours': ('ours: openvino backend (fixed b., OV folds)', False),
    'auto': ('ours: auto = use_hpip, tuned here', False),
    'int8_ort': ('ours: int8 (ORT static QDQ) on onnxruntime', False),
    'int8_ov': ('ours: int8 (ORT static QDQ) on openvino', False),
    'bf16_ov': ('ours: bf16 hint on openvino', False),
    'ov_f32': ('OpenVINO official IR, f32 hint', True),
    'ov_default': ('OpenVINO official IR, default hint', True),
    'paddle': ('Paddle Inference (oneDNN off)', True),
}
#: the rows of --quick
QUICK_KINDS = ('torch_eager', 'torch_default', 'ort_static', 'ov_ours', 'auto', 'int8_ort', 'int8_ov', 'bf16_ov',
               'ov_f32', 'ov_default', 'paddle')
#: precision of each row (fp32 unless listed)
PRECISION = {'int8_ort': 'int8', 'int8_ov': 'int8', 'bf16_ov': 'bf16', 'ov_default': 'default hint'}


class NotRun(Exception):
    """A row that cannot run on this machine (the message says why)."""


def build_runner(kind, size, batch, ckpt, work, threads, shared):
    """A callable batch -> heatmaps for one runner kind and a fixed batch size."""
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    w, h = SIZES[size]
    if kind == 'auto' or kind.startswith(('int8', 'bf16')):
        import kpt_plugin
        from kpt_plugin.inference.quantize import has_bf16
        if kind.startswith('bf16') and not has_bf16():
            raise NotRun('not run: no bf16 on this CPU')
        backend = 'auto' if kind == 'auto' else ('openvino' if kind.endswith('_ov') else 'onnxruntime')
        precision = 'fp32' if kind == 'auto' else kind.split('_')[0]
        m = kpt_plugin.create_model(f'PP-TinyPose_{size}', model_dir=ckpt, device='cpu', backend=backend,
                                    precision=precision, hpi_config=dict(backend_config=dict(cpu_num_threads=threads)))
        runner = m.runner
        if kind == 'auto':
            choice = runner.tune(runner.bucket_of(batch))
            build_runner.note = '/'.join(choice)
            runner = runner.runner(choice).inner
        if hasattr(runner, 'background_export'):
            runner.background_export = False  # time the graph, never the torch stand-in of a cold cache
        return runner
    if kind.startswith('torch'):
        import copy
        from kpt_plugin.inference.folding import fold_for_inference
        from kpt_plugin.inference.nets import HeatmapNet, build_pose_model
        from kpt_plugin.inference.runtime.torch import TorchBackend
        from kpt_plugin.zoo import get_config_path
        pose = build_pose_model(get_config_path(f'PP-TinyPose_{size}'), ckpt)
        if kind == 'torch_default':
            # its steady state: folded and traced at once (the predictor waits for repeated shapes first)
            return TorchBackend(pose, 'cpu', trace_after=1, fold_after_s=0)
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
        from kpt_plugin._compat import openvino_core
        core = openvino_core()
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
    """Child process: build one runner (kind, size, batch), save its heatmaps, then time blocks of calls on request.

    Protocol (lines): child ``READY {json}``; parent ``T n`` -> child ``MS [n times in ms]``; parent ``Q`` -> exit.
    """
    import numpy as np
    crops = np.load(osp.join(args.shared, 'fixtures', 'enhance', f'{args.size}_real_crops_b8.npy'))
    w, h = SIZES[args.size]
    x = np.ascontiguousarray(np.resize(crops, (args.batch, 3, h, w)))
    build_runner.note = ''
    try:
        t0 = time.perf_counter()
        fn = build_runner(args.worker, args.size, args.batch, args.ckpt, args.work, args.threads, args.shared)
        hm = fn(x)
        for _ in range(3):  # warm-up (torch traces on a shape's 2nd call)
            fn(x)
        setup = time.perf_counter() - t0
    except ImportError as e:
        print('READY ' + json.dumps(dict(note=f'not installed ({e.name}), not run')), flush=True)
        return
    except NotRun as e:
        print('READY ' + json.dumps(dict(note=str(e))), flush=True)
        return
    np.save(osp.join(args.work, f'{args.size}_{args.worker}_b{args.batch}.npy'), np.asarray(hm))
    print('READY ' + json.dumps(dict(setup_s=setup, note=build_runner.note)), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] != 'T':
            return
        times = []
        for _ in range(int(cmd[1])):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1000)
        print('MS ' + json.dumps(times), flush=True)


class Worker:
    """A runner in its own process (see :func:`worker`)."""

    def __init__(self, args, kind, size, batch, ckpt, work):
        import subprocess
        cmd = [sys.executable, osp.abspath(__file__), '--worker', kind, '--size', size, '--ckpt', ckpt, '--work', work,
               '--threads', str(args.threads), '--shared', args.shared, '--batch', str(batch)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), KPT_PLUGIN_HOME=osp.join(work, 'home'))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)
        self.info = self._read('READY')
        self.ok = self.info is not None and 'setup_s' in self.info
        if self.info is None:
            err = self.proc.stderr.read().strip().splitlines()[-1:] or ['no output']
            self.info = dict(note=f'failed: {err[0][:60]}')
        if not self.ok:
            self.close()

    def _read(self, tag):
        for line in self.proc.stdout:
            if line.startswith(tag + ' '):
                return json.loads(line[len(tag) + 1:])
        return None

    def time(self, n):
        self.proc.stdin.write(f'T {n}\n')
        self.proc.stdin.flush()
        return self._read('MS') or []

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write('Q\n')
                self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (OSError, ValueError, Exception):  # noqa: BLE001 - a dead child is closed already
            self.proc.kill()


def time_cell(args, kinds, size, batch, ckpt, work):
    """Median ms of every runner kind at one cell, per repeat, timed interleaved. Returns {kind: info}."""
    workers = {}
    for kind in kinds:  # built one after the other: an export never competes with another build
        workers[kind] = Worker(args, kind, size, batch, ckpt, work)
    live = [k for k in kinds if workers[k].ok]
    reps = {k: [] for k in live}
    for _ in range(args.repeats):
        samples = {k: [] for k in live}
        t_end = time.perf_counter() + args.min_time * len(live)
        while live and (min(len(v) for v in samples.values()) < 7 or time.perf_counter() < t_end):
            for k in live:  # A B C ... A B C ...: drift hits every runner alike
                samples[k] += workers[k].time(args.block)
            if min(len(v) for v in samples.values()) >= 200:
                break
        for k in live:
            reps[k].append(statistics.median(samples[k]) if samples[k] else None)
    for w in workers.values():
        w.close()
    return {k: dict(workers[k].info, reps=reps.get(k)) for k in kinds}


# --------------------------------------------------------------------------- main
def main():
    args = parse_args()
    if args.worker:
        if args.worker.startswith('e2e:'):
            return e2e_worker(args, args.worker[4:])
        return worker(args)
    import numpy as np
    from weight_convert.convert import convert

    if args.quick:
        args.sizes = [s for s in args.sizes if s == '128x96'] or ['128x96']
        args.min_time = min(args.min_time, 0.3)
    desc = machine_description(args.threads)
    print(desc, flush=True)
    ceiling = matmul_ceiling(args.threads)
    print(f'matmul ceiling (torch, {args.threads} threads): fp32 {ceiling["fp32"]:.1f} GFLOP/s (2048^2), bf16 '
          f'{ceiling["bf16"]:.2f} GFLOP/s ({ceiling["bf16_n"]}^2)'
          + ('' if _has_bf16() else ' (emulated: no AVX512-BF16/AMX here)'), flush=True)
    work = tempfile.mkdtemp(prefix='kpt_bench_')
    kinds = args.kinds or [k for k in (QUICK_KINDS if args.quick else RUNNERS) if k != 'torch_compile' or args.compile]
    if 'torch_eager' not in kinds:  # the fp32 parity reference
        kinds.insert(0, 'torch_eager')
    results, flops = [], {}
    for size in args.sizes:
        ckpt = osp.join(work, f'{size}.pth')
        convert(osp.join(args.shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), ckpt,
                f'PP-TinyPose_{size}')
        flops[size] = model_flops(size, ckpt)
        print(f'{size}: {flops[size] / 1e6:.0f} MFLOP per crop (convs + linears of the model as trained)', flush=True)
        for batch in args.batches:
            t0 = time.perf_counter()
            cell = time_cell(args, kinds, size, batch, ckpt, work)
            for kind in kinds:
                r = cell[kind]
                label, peer = RUNNERS[kind]
                reps = [v for v in (r.get('reps') or []) if v is not None]
                row = dict(size=size, batch=batch, kind=kind, label=label, peer=peer, note=r.get('note', ''),
                           reps=reps, ms=statistics.median(reps) if reps else None, setup_s=r.get('setup_s'),
                           precision=PRECISION.get(kind, 'fp32'))
                hm_path = osp.join(work, f'{size}_{kind}_b{batch}.npy')
                ref_path = osp.join(work, f'{size}_torch_eager_b{batch}.npy')
                if row['ms'] is not None and kind != 'paddle' and osp.isfile(ref_path):
                    row['max_diff'] = float(np.abs(np.load(hm_path) - np.load(ref_path)).max())
                    row['fp32'] = row['max_diff'] <= 1e-4
                if row['ms'] is not None:
                    row['gflops'] = flops[size] * batch / (row['ms'] / 1e3) / 1e9
                    row['ceiling_frac'] = row['gflops'] / ceiling['fp32']
                results.append(row)
            add_ratios(results, size, batch)
            print(f'  {size} b{batch}: {len(kinds)} runners, {args.repeats} interleaved repeats '
                  f'({time.perf_counter() - t0:.0f} s)', file=sys.stderr)
    print_table(results, args.repeats)
    print_targets(results)
    e2e = [] if args.no_e2e else end_to_end(args, work)
    print(f'\nload average at the end: {os.getloadavg()[0]:.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=desc, ceiling=ceiling, flops=flops, rows=results, e2e=e2e), f, indent=1)


def _has_bf16():
    from kpt_plugin.inference.quantize import has_bf16
    return has_bf16()


def add_ratios(results, size, batch):
    """Per repeat: ms / best fp32 peer of that repeat; the median and spread over repeats."""
    cell = [r for r in results if (r['size'], r['batch']) == (size, batch)]
    peers = [r for r in cell if r['peer'] and r.get('fp32') is not False and r['precision'] == 'fp32' and r['reps']]
    if not peers:
        return
    n = min(len(r['reps']) for r in peers)
    best = [min(r['reps'][i] for r in peers) for i in range(n)]
    for r in cell:
        if len(r['reps']) >= n and n:
            ratios = [r['reps'][i] / best[i] for i in range(n)]
            r.update(ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios))


def print_table(results, repeats):
    print(f'\nNetwork latency, ms (median of {repeats} interleaved repeats) and ratio to the best fp32 peer '
          '(median [min-max] over the repeats, each repeat against the same repeat\'s peer, so the ratio is steadier '
          'than the ms); fp32 parity = max|heatmap diff| vs eager <= 1e-4, else d= is shown')
    cells = sorted({(r['size'], r['batch']) for r in results}, key=lambda c: (c[0] != '128x96', c[1]))
    for r in results:
        if r.get('note') and r['note'] not in r['label'] and r['ms'] is not None:
            r['label'] = f"{r['label']} ({r['note'].replace('<Type: ', '').replace('>', '')})"
    labels = list(dict.fromkeys(r['label'] for r in results))
    width = 36
    print(f'{"":64s}' + ''.join(f'{f"{s} b{b}":>{width}s}' for s, b in cells))
    for label in labels:
        line = f'{label[:64]:64s}'
        for c in cells:
            r = next((r for r in results if (r['size'], r['batch']) == c and r['label'] == label), None)
            if r is None or r.get('ms') is None:
                line += f'{(r or {}).get("note", "-")[:width - 1]:>{width}s}'
                continue
            ratio = (f'{r["ratio"]:.2f}x [{r["ratio_min"]:.2f}-{r["ratio_max"]:.2f}]' if 'ratio' in r else '-')
            flag = '' if r.get('fp32') in (True, None) else f' d={r["max_diff"]:.0e}'
            cell = f' {r["ms"]:.2f} {ratio}{flag}'
            line += f'{cell:>{width}s}'
        print(line)
    print('\nEffective GFLOP/s (model FLOPs / time) and fraction of the fp32 matmul ceiling')
    for label in labels:
        line = f'{label[:64]:64s}'
        for c in cells:
            r = next((r for r in results if (r['size'], r['batch']) == c and r['label'] == label), None)
            cell = '-' if r is None or r.get('gflops') is None else f'{r["gflops"]:.1f} ({r["ceiling_frac"]:.0%})'
            line += f'{cell:>{width}s}'
        print(line)


def print_targets(results):
    """The issue's targets, judged on the median ratio."""
    cells = sorted({(r['size'], r['batch']) for r in results}, key=lambda c: (c[0] != '128x96', c[1]))
    print('\nTargets (judged on the median ratio over the repeats):')
    for kind, goal, what in (('auto', 0.8, 'fp32 auto choice <= 0.8x the best fp32 peer'),
                             (('int8_ort', 'int8_ov'), 0.5, 'int8 >= 2x faster than the best fp32 peer (<= 0.5x)'),
                             ('bf16_ov', 0.5, 'bf16 >= 2x faster than the best fp32 peer (<= 0.5x)')):
        kinds = kind if isinstance(kind, tuple) else (kind, )
        parts = []
        for c in cells:
            rows = [r for r in results if (r['size'], r['batch']) == c and r['kind'] in kinds and 'ratio' in r]
            if not rows:
                note = next((r['note'] for r in results if (r['size'], r['batch']) == c and r['kind'] in kinds), '')
                parts.append(f'{c[0]} b{c[1]}: {note or "not run"}')
                continue
            r = min(rows, key=lambda r: r['ratio'])
            parity = '' if r['precision'] != 'fp32' or r.get('fp32') else ' NOT fp32 parity'
            parts.append(f'{c[0]} b{c[1]}: {r["ratio"]:.2f}x {"met" if r["ratio"] <= goal and not parity else "MISSED"}'
                         f'{parity}')
        print(f'  {what}: ' + '; '.join(parts))


def e2e_worker(args, backend):
    """Child process: ``predict`` timings of one backend at one size; prints one JSON line."""
    import torch
    import kpt_plugin
    torch.set_num_threads(args.threads)
    data = osp.join(args.shared, 'data', 'coco_val2017_mini')
    files = sorted(osp.join(data, f) for f in os.listdir(data) if f.endswith('.jpg'))
    m = kpt_plugin.create_model(f'PP-TinyPose_{args.size}', model_dir=args.ckpt, device='cpu', backend=backend,
                                hpi_config=dict(backend_config=dict(cpu_num_threads=args.threads)))
    if hasattr(m.runner, 'background_export'):
        m.runner.background_export = False  # time the graph, never the torch stand-in of a cold cache
    rows = []
    for batch in (1, 8):
        inputs = (files * 2)[:batch] if batch == 8 else files
        for _ in range(2):  # warm-up: the one-time export / tuning, torch's trace on a shape's 2nd batch
            list(m.predict(inputs, batch_size=batch))
        m.wait()  # backend auto: the tuning the warm-up deferred (rent-or-buy), then its winner's graphs
        fold = getattr(m.runner, 'fold', None)
        if fold is not None:
            fold()  # torch: the folds its first 0.5 s of eager calls would bring (steady state is timed)
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
    print(f'{"":36s}{"load":>8s}{"pre":>8s}{"model":>8s}{"post":>8s}{"total":>8s}{"(pre+post)/model":>18s}'
          '  (target at batch 8: <= 25 %)')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), KPT_PLUGIN_HOME=osp.join(work, 'home'))
    for size in args.sizes:
        for backend in ('torch', 'onnxruntime', 'openvino', 'auto'):
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
                      + f'{row["ratio"]:17.1%}'
                      + ('' if row['batch'] != 8 else ('  met' if row['ratio'] <= 0.25 else '  MISSED')))
                out.append(row)
    return out


if __name__ == '__main__':
    main()
