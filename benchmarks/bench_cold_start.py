"""Cold start: time to the first result and to three results, each cell in a fresh process, against MMPose eager.

For 1, 14 and 100 persons (GT-like boxes on a COCO image: its 5 ground-truth person boxes, repeated with small
shifts) at 256x192 and 128x96, every backend (``torch``, ``onnxruntime``, ``openvino``, ``hpip`` = ``use_hpip=True``)
and MMPose's own ``init_model`` + ``inference_topdown`` (eager, our config and converted checkpoint, the peer) run in
a new interpreter that:

1. imports what it needs (``import kpt_plugin``; the peer also ``mmpose.apis``): **import**, reported apart;
2. builds the model (``create_model`` / ``init_model``) and runs ``predict`` on the image with all boxes three times:
   **first** = build + first call (the time to the first result once imported), **total** = build + three calls.

**From start** adds the imports: what a user waits for from ``python script.py`` (the peer imports MMPose's API up
front, ours imports what ``create_model`` needs on the first call, so only this sum compares like with like).

Each graph-backend cell runs twice: **cold** with a fresh, empty ``$KPT_PLUGIN_HOME`` (no exported graphs yet), then
**warm** in a new process on a complete cache (what every later run sees: a process that ran the cell and called
``model.wait()``, i.e. exported, and for hpip tuned, every batch size the cell needs, fills it in between; a short
cold run leaves nothing behind, its eager calls never paid for an export). The peer and
``torch`` cache nothing between processes, so they run once and that run is both. The peer runs without the
config's flip test (``flip_test=False``) so it does the same work as ours (``flip=False``, the default). Ratios are
to the peer's cell of the same size and person count. All numbers are wall-clock seconds, medians of ``--repeats``
runs (imports alone vary by +-1 s between processes on a shared machine: use 3 or more).

Usage (from the repo root)::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_cold_start.py [--quick] [--repeats 3] [--json out.json]

``--quick`` (validation): 128x96 only, 1 and 14 persons, torch + onnxruntime + the peer.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time

T_START = time.perf_counter()  # the worker's import timer starts here (interpreter start-up itself is excluded)

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)

SIZES = ('256x192', '128x96')
PERSONS = (1, 14, 100)
RUNNERS = ('mmpose', 'torch', 'onnxruntime', 'openvino', 'hpip')
CACHELESS = ('torch', 'mmpose')  # nothing of theirs is cached between processes: one run serves as cold and warm
IMAGE = '000000197388.jpg'  # the mini set's image with the most annotated persons (5)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(ROOT), 'shared')))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--quick', action='store_true', help='a small subset, to check the script')
    p.add_argument('--sizes', nargs='+', default=None, choices=SIZES)
    p.add_argument('--persons', nargs='+', type=int, default=None)
    p.add_argument('--runners', nargs='+', default=None, choices=RUNNERS)
    p.add_argument('--repeats', type=int, default=1,
                   help='run the whole interleaved sequence this many times; cells show the medians')
    p.add_argument('--json', default=None, help='write the raw numbers here')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)  # internal: one cell in this process
    p.add_argument('--cell', default=None, help=argparse.SUPPRESS)
    p.add_argument('--prepare', action='store_true', help=argparse.SUPPRESS)  # internal: fill the cache
    return p.parse_args()


def gt_like_boxes(shared, n):
    """``n`` [x1, y1, x2, y2] boxes: the image's GT person boxes, then copies shifted by a few pixels."""
    import numpy as np
    data = osp.join(shared, 'data', 'coco_val2017_mini')
    with open(osp.join(data, 'test_coco.json')) as f:
        coco = json.load(f)
    image = next(i for i in coco['images'] if i['file_name'] == IMAGE)
    gt = [a['bbox'] for a in coco['annotations'] if a['image_id'] == image['id'] and a['num_keypoints'] > 0]
    rng = np.random.default_rng(0)
    boxes = []
    for i in range(n):
        x, y, w, h = gt[i % len(gt)]
        dx, dy = (rng.uniform(-0.05, 0.05, 2) * [w, h]) if i >= len(gt) else (0., 0.)
        x1, y1 = max(0., x + dx), max(0., y + dy)
        boxes.append([x1, y1, min(image['width'] - 1., x1 + w), min(image['height'] - 1., y1 + h)])
    return osp.join(data, IMAGE), boxes


# --------------------------------------------------------------------------- one cell, in its own process
def worker(runner, cell, prepare=False):
    t0 = T_START
    import kpt_plugin  # our modules join MMPose's registries (the peer's init_model builds our config with them)
    if runner == 'mmpose':
        from mmpose.apis import inference_topdown, init_model
    t_import = time.perf_counter() - t0

    import numpy as np
    t1 = time.perf_counter()
    if runner == 'mmpose':
        from kpt_plugin.zoo import get_config_path
        model = init_model(get_config_path(cell['model']), cell['ckpt'], device='cpu',
                           cfg_options=dict(model=dict(test_cfg=dict(flip_test=False))))
        boxes = np.asarray(cell['boxes'], np.float32)

        def predict():
            samples = inference_topdown(model, cell['image'], bboxes=boxes)
            return len(samples)
    else:
        how = dict(use_hpip=True) if runner == 'hpip' else dict(backend=runner)
        model = kpt_plugin.create_model(cell['model'], model_dir=cell['ckpt'], device='cpu', **how)

        def predict():
            return len(next(model.predict(cell['image'], bboxes=cell['boxes']))['kpts'])
    calls = []
    for _ in range(3):
        n = predict()
        calls.append(time.perf_counter() - t1)
    assert n == len(cell['boxes']), (n, len(cell['boxes']))
    if prepare:
        model.wait()  # the exports / tunings the calls deferred: leaves the cache complete for the warm run
    from kpt_plugin.inference.runtime.tuning import cpu_model
    return dict(import_s=t_import, first_s=calls[0], total_s=calls[-1], calls_s=calls, cpu=cpu_model())


def run_cell(args, runner, size, persons, home, ckpt, prepare=False):
    image, boxes = gt_like_boxes(args.shared, persons)
    cell = dict(model=f'PP-TinyPose_{size}', ckpt=ckpt, image=image, boxes=boxes)
    env = dict(os.environ, KPT_PLUGIN_HOME=home, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), PYTHONPATH=ROOT)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, '--worker', runner, '--cell', json.dumps(cell)]
                         + (['--prepare'] if prepare else []), env=env,
                         capture_output=True, text=True, timeout=1800, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return dict(error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f'rc {out.returncode}')
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res['process_s'] = wall  # interpreter start to exit (includes waiting for anything left running at exit)
    return res


def convert_checkpoints(shared, sizes, work):
    sys.path.insert(0, ROOT)
    from weight_convert.convert import convert
    paths = {}
    for size in sizes:
        paths[size] = osp.join(work, f'pp_tinypose_{size}.pth')
        convert(osp.join(shared, 'fixtures', 'enhance', f'{size}_enhance_folded.pdparams'), paths[size],
                arch=f'PP-TinyPose_{size}')
    return paths


def median_run(results):
    """Field-wise median of one cell's repeats (an error in any repeat makes the cell an error)."""
    import statistics
    errors = [r for r in results if 'error' in r]
    if errors:
        return errors[0]
    keys = ('import_s', 'first_s', 'total_s', 'process_s')
    return {k: statistics.median(r[k] for r in results) for k in keys}


def fmt(res):
    if 'error' in res:
        return 'error'
    return f"{res['first_s']:.2f} / {res['total_s']:.2f}"


def ratio(res, peer):
    if 'error' in res or 'error' in peer:
        return ''
    return f" ({res['first_s'] / peer['first_s']:.2f}x / {res['total_s'] / peer['total_s']:.2f}x)"


def from_start(res, peer):
    """First result / three results counted from the start (imports included), with the ratios to the peer's."""
    if 'error' in res:
        return 'error'
    first, total = res['import_s'] + res['first_s'], res['import_s'] + res['total_s']
    out = f'{first:.2f} / {total:.2f}'
    if 'error' not in peer:
        out += (f" ({first / (peer['import_s'] + peer['first_s']):.2f}x / "
                f"{total / (peer['import_s'] + peer['total_s']):.2f}x)")
    return out


def main():
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.cell), prepare=args.prepare)))
        return
    sizes = args.sizes or (['128x96'] if args.quick else list(SIZES))
    persons = args.persons or ([1, 14] if args.quick else list(PERSONS))
    runners = args.runners or (['mmpose', 'torch', 'onnxruntime'] if args.quick else list(RUNNERS))
    work = tempfile.mkdtemp(prefix='kpt_cold_')
    load0 = os.getloadavg()[0]
    try:
        ckpts = convert_checkpoints(args.shared, sizes, work)
        runs = {}  # 'size/n/runner' -> [dict(cold=..., warm=...) per repeat]
        for rep in range(args.repeats):
            for size in sizes:
                for n in persons:
                    for runner in runners:  # interleaved: the load of a shared machine drifts, the peer runs beside
                        home = osp.join(work, f'home-{size}-{n}-{runner}-{rep}')  # fresh and empty: cold
                        cold = run_cell(args, runner, size, n, home, ckpts[size])
                        # torch and the peer cache nothing: their warm run is the cold one
                        warm = cold
                        if runner not in CACHELESS:
                            run_cell(args, runner, size, n, home, ckpts[size], prepare=True)  # a complete cache
                            warm = run_cell(args, runner, size, n, home, ckpts[size])
                        runs.setdefault(f'{size}/{n}/{runner}', []).append(dict(cold=cold, warm=warm))
                        print(f'[{rep + 1}/{args.repeats}] {size} {n:>3} persons {runner:<12} cold {fmt(cold)}  warm '
                              f"{fmt(warm)}  import {cold.get('import_s', float('nan')):.2f} s", flush=True)
                        if args.json:
                            with open(args.json, 'w') as f:
                                json.dump(runs, f, indent=1)
        results = {k: dict(cold=median_run([r['cold'] for r in v]), warm=median_run([r['warm'] for r in v]))
                   for k, v in runs.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu = next((r['cold'].get('cpu') for v in runs.values() for r in v if 'cpu' in r['cold']), 'unknown CPU')
    print(f'\n{cpu}; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at the end; {args.threads} threads; '
          f'{os.cpu_count()} logical CPUs')
    print(f'\nmedians of {args.repeats} run(s); seconds after import and from start (imports included): first result '
          '/ three results (ratio to MMPose eager); process: interpreter start to exit of the cold run (a process '
          'finishes a background export it started before exiting)\n')
    print('| size, persons | backend | cold | warm | import (cold) | cold from start | warm from start | '
          'process (cold) |')
    print('|---|---|---|---|---|---|---|---|')
    for size in sizes:
        for n in persons:
            peer = results.get(f'{size}/{n}/mmpose', {}).get('warm', {'error': 'not run'})
            for runner in runners:
                r = results.get(f'{size}/{n}/{runner}')
                if r is None:
                    continue
                imp = r['cold'].get('import_s')
                print(f"| {size}, {n} | {runner} | {fmt(r['cold'])}{ratio(r['cold'], peer)} | "
                      f"{fmt(r['warm'])}{ratio(r['warm'], peer)} | {'' if imp is None else f'{imp:.2f}'} | "
                      f"{from_start(r['cold'], peer)} | {from_start(r['warm'], peer)} | "
                      f"{r['cold'].get('process_s', float('nan')):.1f} |")


if __name__ == '__main__':
    main()
