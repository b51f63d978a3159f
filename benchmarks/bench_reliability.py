"""Reliability under load: many mixed good/bad inputs in ONE ``kpt-plugin predict`` call keep RSS flat and every good
input's result is written; 1000 boxes on one image run in bounded chunks.

Part 1 builds N inputs (default 500) cycling through: good small images (several sizes), missing files, garbage bytes,
truncated JPEGs and PNG headers that claim 60000 x 60000 pixels; runs ``kpt-plugin predict`` on all of them at once
(in-process, the real CLI code path) and prints the resident memory (``VmRSS`` of ``/proc/self/status``) every 50
results. It then checks that each good input has its json (strict JSON, 1 person) and drawn image, that each bad one is
listed as failed and wrote nothing, and that RSS stayed flat: growth over the last 200 results within
``--max-growth-mb`` (a leak grows in every window; the torch runtime traces a batch shape once, on its 64th batch,
a one-time step of about 70 MiB that the window leaves out and the report shows).

Part 2 (a fresh process each, so the peak is its own) predicts one 640x480 image with 1000 boxes and reports the peak
RSS (``VmHWM``) over the RSS after loading, in bounded chunks (``MAX_CROPS``, 64) and, for contrast, in one chunk.

Usage (from the repo root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_reliability.py [--quick] [--n 500] [--weights W.pth]

``--quick``: 60 inputs (a smoke run). Weights default to the official 128x96 ones in ``../shared`` (converted into a
throw-away ``KPT_PLUGIN_HOME``). Exit code 1 when a check fails.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import os.path as osp
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, ROOT)

KINDS = ('good', 'missing', 'garbage', 'good', 'truncated', 'good', 'huge-header', 'good')


def rss_mb(field='VmRSS'):
    """Resident (``VmRSS``) or peak resident (``VmHWM``) memory of this process in MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(ROOT), 'shared')))
    p.add_argument('--weights', default=None, help='weights (default: the official 128x96 ones in --shared)')
    p.add_argument('--n', type=int, default=500, help='inputs of part 1 (default 500)')
    p.add_argument('--quick', action='store_true', help='60 inputs (smoke run)')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--max-growth-mb', type=float, default=20.0,
                   help='allowed RSS growth over the last 200 results (from the first report at or after the '
                   '(N-200)th result, at least the 50th, to the end)')
    p.add_argument('--skip-boxes', action='store_true', help='part 1 only')
    p.add_argument('--keep', action='store_true', help="keep part 1's inputs and outputs (printed folder)")
    p.add_argument('--boxes-only', action='store_true', help=argparse.SUPPRESS)  # part 2's child process
    p.add_argument('--max-crops', type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _weights(args):
    if args.weights:
        return args.weights
    return osp.join(args.shared, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams')


def _png_header(width, height):
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def make_inputs(folder, n, source):
    """``n`` input paths in ``folder`` -> (paths, {path: kind})."""
    import cv2
    sizes = [(48, 64), (96, 128), (160, 120), (320, 240)]
    encoded = [cv2.imencode('.jpg', cv2.resize(source, s))[1].tobytes() for s in sizes]
    paths, kinds = [], {}
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        path = osp.join(folder, f'{i:04d}_{kind}.' + ('png' if kind == 'huge-header' else 'jpg'))
        data = {'good': encoded[i % len(encoded)], 'garbage': os.urandom(2000 + i),
                'truncated': encoded[i % len(encoded)][:len(encoded[i % len(encoded)]) // 3],
                'huge-header': _png_header(60000, 60000), 'missing': None}[kind]
        if data is not None:
            with open(path, 'wb') as f:
                f.write(data)
        paths.append(path)
        kinds[path] = kind
    return paths, kinds


def part1(args):
    import cv2

    from kpt_plugin.inference import predictor
    from kpt_plugin_cli import main

    n = 60 if args.quick else args.n
    source = cv2.imread(osp.join(args.shared, 'data', 'coco_val2017_mini', '000000000785.jpg'))
    work = tempfile.mkdtemp(prefix='kpt_bench_rel_')
    os.makedirs(osp.join(work, 'in'))
    paths, kinds = make_inputs(osp.join(work, 'in'), n, source)
    out = osp.join(work, 'out')
    samples = []
    real_predict = predictor.KeypointPredictor.predict
    console = sys.stdout  # the CLI's own output is captured below, to check it

    def probed(self, *a, **k):
        t0 = time.perf_counter()
        for i, res in enumerate(real_predict(self, *a, **k), 1):
            yield res
            if i % 50 == 0 or i == n:
                samples.append((i, rss_mb(), time.perf_counter() - t0))
                print(f'  {i:4d} results: RSS {samples[-1][1]:7.1f} MiB, {samples[-1][2]:6.1f} s', file=console,
                      flush=True)

    predictor.KeypointPredictor.predict = probed
    print(f'part 1: {n} inputs ({", ".join(f"{k} {list(kinds.values()).count(k)}" for k in sorted(set(KINDS)))}) '
          f'in one `kpt-plugin predict` call, batch {args.batch_size}; RSS before: {rss_mb():.1f} MiB')
    summary = io.StringIO()
    # each failed input is also logged as a warning; the summary lists them, once is enough here
    logging.getLogger('kpt_plugin').setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(summary):
        rc = main(['predict', *paths, '--weights', _weights(args), '--model', 'PP-TinyPose_128x96', '--device', 'cpu',
                   '--batch-size', str(args.batch_size), '--save-dir', out, '--quiet'])
    wall = time.perf_counter() - t0
    predictor.KeypointPredictor.predict = real_predict
    text = summary.getvalue()
    problems = []
    for path, kind in kinds.items():
        stem = osp.splitext(osp.basename(path))[0]
        jpath, ipath = osp.join(out, f'{stem}_res.json'), osp.join(out, f'{stem}_res.jpg')
        if kind == 'good':
            try:
                with open(jpath, 'rb') as f:
                    res = json.loads(f.read().decode('utf-8'), parse_constant=lambda c: 1 / 0)
                if len(res['kpts']) != 1 or not osp.isfile(ipath):
                    problems.append(f'{path}: incomplete result')
            except (OSError, ValueError, ZeroDivisionError) as e:
                problems.append(f'{path}: result not written or not strict JSON ({e})')
        else:
            if osp.exists(jpath) or osp.exists(ipath):
                problems.append(f'{path}: bad input ({kind}) wrote an output')
            if f'failed: {path}' not in text:
                problems.append(f'{path}: bad input ({kind}) not listed as failed')
    good = sum(k == 'good' for k in kinds.values())
    # a leak grows in every window; the torch runtime's one-time trace of a batch shape (its 64th batch of that
    # shape, runtime/torch.py TRACE_AFTER) is a step that the last 200 results no longer contain
    start, base = next((i, r) for i, r, _ in samples if i >= max(50, n - 200))
    growth = samples[-1][1] - base
    print(f'  rc {rc}; {good} good inputs, results written: {good - sum("good" in p for p in problems)}; '
          f'{n - good} bad inputs listed as failed; {wall:.1f} s; RSS from the 50th result to the end '
          f'{samples[-1][1] - samples[0][1]:+.1f} MiB, over the last {n - start} results {growth:+.1f} MiB '
          f'(limit {args.max_growth_mb:g})')
    print('  CLI summary: ' + text.splitlines()[0] if text else '  (no summary printed)')
    if rc != 1:
        problems.append(f'exit code {rc}, expected 1 (some inputs failed)')
    if args.keep:
        print(f'  inputs and outputs kept in {work}')
    else:
        shutil.rmtree(work, ignore_errors=True)
    if growth > args.max_growth_mb:
        problems.append(f'RSS grew by {growth:.1f} MiB')
    return problems


def part2_child(args):
    import numpy as np
    import cv2

    import kpt_plugin
    model = kpt_plugin.create_model('PP-TinyPose_128x96', model_dir=_weights(args), device='cpu')
    if args.max_crops:
        model.MAX_CROPS = args.max_crops
    img = cv2.imread(osp.join(args.shared, 'data', 'coco_val2017_mini', '000000000785.jpg'))
    h, w = img.shape[:2]
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [w - 60, h - 120], (1000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform([20, 40], [60, 120], (1000, 2)), np.full((1000, 1), 0.9)], 1)
    list(model.predict(img, bboxes=boxes[:2].tolist()))  # warm-up: lazy allocations are not the boxes' cost
    before = rss_mb()
    t0 = time.perf_counter()
    res = list(model.predict(img, bboxes=boxes.tolist()))[0]
    print(json.dumps(dict(persons=len(res['kpts']), ok=res.ok, rss_before=before, peak=rss_mb('VmHWM'),
                          seconds=time.perf_counter() - t0, chunk=model.MAX_CROPS)))


def part2(args):
    print('part 2: one 640x480 image with 1000 boxes (fresh process each)')
    problems, rows = [], []
    for crops in (None, 1000):
        cmd = [sys.executable, osp.abspath(__file__), '--boxes-only', '--shared', args.shared]
        cmd += ['--weights', args.weights] if args.weights else []
        cmd += ['--max-crops', str(crops)] if crops else []
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('{')), None)
        if proc.returncode or line is None:
            problems.append(f'1000 boxes (chunk {crops or "default"}) failed: {proc.stderr.strip()[-300:]}')
            continue
        r = json.loads(line)
        rows.append(r)
        print(f'  chunk {r["chunk"]:4d}: {r["persons"]} persons in {r["seconds"]:.1f} s; RSS after load '
              f'{r["rss_before"]:.0f} MiB, peak {r["peak"]:.0f} MiB (+{r["peak"] - r["rss_before"]:.0f} MiB)')
        if r['persons'] != 1000 or not r['ok']:
            problems.append(f'1000 boxes (chunk {r["chunk"]}): {r["persons"]} persons')
    return problems


def main(argv=None):
    args = parse_args(argv)
    if args.boxes_only:
        return part2_child(args)
    home = None if os.environ.get('KPT_PLUGIN_HOME') else tempfile.mkdtemp(prefix='kpt_bench_home_')
    if home:
        os.environ['KPT_PLUGIN_HOME'] = home  # the converted weights go to a throw-away cache
    print(f'machine: {os.cpu_count()} CPU(s), OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}')
    problems = part1(args)
    if not args.skip_boxes:
        problems += part2(args)
    if home:
        shutil.rmtree(home, ignore_errors=True)
    for p in problems[:20]:
        print(f'FAIL: {p}')
    print('OK: every good input was written, every bad one failed alone, RSS flat' if not problems else
          f'{len(problems)} check(s) failed')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
