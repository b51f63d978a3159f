"""Serving benchmark: throughput and latency of ``kpt-plugin serve``'s app under concurrent load, local only.

For each mode (micro-batching on: ``--max-batch``; off: max batch 1) a server subprocess is started on 127.0.0.1
with the real pipeline (PicoDet pedestrian -> PP-TinyPose, local weights), warmed up, then loaded by C client
threads (keep-alive connections, each sending the next request when its answer arrives) for ``--duration``
seconds per concurrency. Reported: requests/s, p50 / p99 latency, errors (non-200 answers or failed requests),
the server's RSS before and after the load (after a warm-up at every level), and its batcher's mean batch size
(warm-up included).

    .venv/bin/python benchmarks/bench_serving.py --duration 10            # default 60 s per concurrency level

Client and server share this machine's CPUs: the numbers are for one box, as a single replica would run.
"""
import argparse
import base64
import json
import os
import os.path as osp
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(ROOT), 'shared'))
DEFAULT_DET = osp.join(SHARED, 'fixtures', 'picodet', 'picodet_s_320_lcnet_pedestrian_folded.pdparams')
DEFAULT_KPT = osp.join(SHARED, 'fixtures', 'enhance', '128x96_enhance_folded.pdparams')
DEFAULT_IMAGE = osp.join(SHARED, 'data', 'demo', 'demo_2.jpg')
ENDPOINT = '/human-keypoint-detection'


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown CPU'


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- server process
def serve(opts):
    """The server subprocess: real pipeline, the app, uvicorn on 127.0.0.1; prints its batcher's stats at exit."""
    import uvicorn

    from kpt_plugin import create_pipeline
    from kpt_plugin.serving.app import create_app
    pipeline = create_pipeline('human_keypoint_detection', device='cpu', det_model_dir=opts['det'],
                               kpt_model_dir=opts['kpt'])
    app = create_app(pipeline, max_batch=opts['max_batch'], max_wait_ms=opts['max_wait_ms'],
                     max_queue=opts['max_queue'])
    uvicorn.run(app, host='127.0.0.1', port=opts['port'], log_level='warning')
    print('STATS ' + json.dumps(app.state.serving.batcher.stats), flush=True)


# ---------------------------------------------------------------------------------------------- client side
def load(base, payload, concurrency, duration):
    """C threads posting back to back for ``duration`` s; returns latencies (s) of successes and the error count."""
    import httpx
    lat, errors, lock = [], [0], threading.Lock()
    stop_at = time.monotonic() + duration

    def client():
        with httpx.Client(base_url=base, timeout=60) as c:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    ok = c.post(ENDPOINT, content=payload, headers={'content-type': 'application/json'}
                                ).status_code == 200
                except httpx.HTTPError:
                    ok = False
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        lat.append(dt)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors[0], time.monotonic() - t0


def pct(values, q):
    if not values:
        return float('nan')
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def run_mode(name, args, payload):
    import httpx
    port = free_port()
    opts = dict(det=args.det_weights, kpt=args.kpt_weights, port=port, max_batch=args.max_batch if name == 'on' else 1,
                max_wait_ms=args.max_wait_ms, max_queue=args.max_queue)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, osp.abspath(__file__), '--_serve', json.dumps(opts)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = f'http://127.0.0.1:{port}'
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f'the server exited with {proc.returncode} before it answered /health')
            try:
                if httpx.get(base + '/health', timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > 600:
                raise SystemExit('the server did not start within 600 s')
            time.sleep(0.5)
        # warm-up at every level: the keypoint net is traced once per crop count (the first calls of a new batch
        # shape cost ~1 s and some MB), which would otherwise land in the measured latencies and RSS
        for c in args.concurrency:
            load(base, payload, c, args.warmup)
        rows = []
        rss0 = rss_mb(proc.pid)
        for c in args.concurrency:
            lat, errors, wall = load(base, payload, c, args.duration)
            rows.append(dict(mode=name, concurrency=c, requests=len(lat), errors=errors, rps=len(lat) / wall,
                             p50_ms=1e3 * pct(lat, 50), p99_ms=1e3 * pct(lat, 99),
                             mean_ms=1e3 * statistics.fmean(lat) if lat else float('nan'), rss_mb=rss_mb(proc.pid)))
            print(f'  batching {name:3s} c={c:<3d} {rows[-1]["rps"]:7.2f} req/s  p50 {rows[-1]["p50_ms"]:7.1f} ms  '
                  f'p99 {rows[-1]["p99_ms"]:7.1f} ms  errors {errors}  RSS {rows[-1]["rss_mb"]:.0f} MB', flush=True)
        rss1 = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    stats = next((json.loads(line[6:]) for line in out.splitlines() if line.startswith('STATS ')), {})
    mean_batch = stats['images'] / stats['batches'] if stats.get('batches') else float('nan')
    return rows, dict(mode=name, rss_before_mb=rss0, rss_after_mb=rss1, mean_batch=mean_batch, **stats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--duration', type=float, default=60.0, help='seconds per concurrency level (default 60)')
    p.add_argument('--concurrency', type=int, nargs='+', default=[1, 4, 16])
    p.add_argument('--warmup', type=float, default=3.0, help='seconds of load per level before measuring')
    p.add_argument('--modes', nargs='+', choices=['on', 'off'], default=['on', 'off'],
                   help='micro-batching on (--max-batch) and/or off (max batch 1)')
    p.add_argument('--max-batch', type=int, default=8)
    p.add_argument('--max-wait-ms', type=float, default=5.0)
    p.add_argument('--max-queue', type=int, default=64)
    p.add_argument('--image', default=DEFAULT_IMAGE, help='image file sent by every request')
    p.add_argument('--visualize', action='store_true', help='ask for the drawn image too (PaddleX default on)')
    p.add_argument('--det-weights', default=DEFAULT_DET)
    p.add_argument('--kpt-weights', default=DEFAULT_KPT)
    p.add_argument('--json', default=None, help='also write the results here')
    p.add_argument('--_serve', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._serve:
        return serve(json.loads(args._serve))
    if not (0 < args.duration <= 3600 and 0 <= args.warmup <= 600 and all(0 < c <= 256 for c in args.concurrency)):
        p.error('--duration must be in (0, 3600] s and --concurrency in 1..256 (a bounded, local benchmark)')
    for path in (args.image, args.det_weights, args.kpt_weights):
        if not osp.isfile(path):
            p.error(f'{path}: not found (local files only; see --image / --det-weights / --kpt-weights)')
    with open(args.image, 'rb') as f:
        payload = json.dumps({'image': base64.b64encode(f.read()).decode(), 'visualize': args.visualize}).encode()
    print(f'{cpu_model()}, {os.cpu_count()} CPUs; image {osp.basename(args.image)}; {args.duration:g} s per level; '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}', flush=True)
    rows, servers = [], []
    for mode in args.modes:
        r, s = run_mode(mode, args, payload)
        rows += r
        servers.append(s)
    print('\n| batching | concurrency | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["mode"]} | {r["concurrency"]} | {r["rps"]:.2f} | {r["p50_ms"]:.0f} | {r["p99_ms"]:.0f} | '
              f'{r["errors"]} |')
    print('\n| batching | server RSS before MB | after MB | mean batch | largest batch |\n|---|---|---|---|---|')
    for s in servers:
        print(f'| {s["mode"]} | {s["rss_before_mb"]:.0f} | {s["rss_after_mb"]:.0f} | {s["mean_batch"]:.2f} | '
              f'{s.get("largest_batch", "?")} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(cpu=cpu_model(), cpus=os.cpu_count(), duration=args.duration, rows=rows, servers=servers),
                      f, indent=2)
    return 1 if any(r['errors'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
