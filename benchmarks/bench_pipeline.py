"""End-to-end PicoDet -> PP-TinyPose pipeline benchmark (CPU): ours against the peers, in ONE run, same threads.

Times ``create_pipeline('human_keypoint_detection')`` per image on the pipeline fixture images (the 4 of
``../shared/data/coco_val2017_mini`` and ``../shared/data/demo/demo_{2,4,7}.jpg``) and in frames per second on a
30-frame video made from them (written with ``cv2.VideoWriter`` into a temp dir), split into stages:

* ``decode``: ``cv2.imread`` of the JPEG / ``VideoCapture.read`` of the frame;
* ``detector``: PicoDet preprocessing (bicubic stretch, normalisation), network, box decoding and NMS;
* ``pose``: the person crops, their normalisation and the keypoint network;
* ``post``: heatmap decoding (DARK, back-projection) and building the results.

Systems (each in its own process, so the runtimes' thread pools do not fight; timed INTERLEAVED, one image of each
system in turn, the order rotated every round, so machine drift cancels):

* ``ours torch``: the default (``create_pipeline(...)``, torch on cpu);
* ``ours hpip``: ``create_pipeline(..., use_hpip=True)`` (both networks on the runtime measured fastest here:
  backend ``auto``, tuned during the untimed warm-up pass or taken from ``$KPT_PLUGIN_HOME/tuning.json``);
* ``OpenVINO IRs (f32)``: the best fp32 peer: OpenVINO running BOTH official IRs
  (``../shared/weights/picodet_s_lcnet_pedestrian_openvino_fp16/{S}`` and
  ``../shared/weights/pp_tinypose_enhance_openvino_fp16/{size}``) with the f32 precision hint, with OUR pre- and
  postprocessing (only the network runtime differs; one compiled model per keypoint batch size);
* ``Paddle Inference``: Baidu's exported graphs (``../shared/weights/picodet_s_lcnet_pedestrian_paddle_inference/{S}``,
  NMS inside; ``../shared/weights/paddlex_inference_enhance/PP-TinyPose_{size}``), oneDNN off, when ``paddle`` is
  importable (``requirements/bench.txt``).

Cold start (fresh process: model build, then the first image) is printed apart from the steady state. Every
system's keypoints are checked against ours torch (fp32 parity).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_pipeline.py [--threads 2] [--quick] [--size 128x96] [--det 320] [--json out]
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, ROOT)

SIZES = {'128x96': (96, 128), '256x192': (192, 256)}
STAGES = ('decode', 'detector', 'pose', 'post')
SYSTEMS = {
    'ours_torch': 'ours torch (default)',
    'ours_hpip': 'ours hpip (openvino)',
    'ov_ir': 'OpenVINO IRs (f32)',
    'paddle': 'Paddle Inference',
}
PEERS = ('ov_ir', 'paddle')
FRAMES = 30
VIDEO_SIZE = (640, 480)
#: the frame reply marker: the workers' libraries may print to stdout
MARK = '@@bench@@ '


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shared', default=os.environ.get('KPT_PLUGIN_SHARED', osp.join(osp.dirname(ROOT), 'shared')))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--size', default='128x96', choices=list(SIZES), help='keypoint model')
    p.add_argument('--det', type=int, default=320, choices=(320, 192), help='PicoDet input size')
    p.add_argument('--rounds', type=int, default=10, help='timed passes over the images (each system)')
    p.add_argument('--video-rounds', type=int, default=3, help='timed passes over the video (each system)')
    p.add_argument('--quick', action='store_true', help='2 image rounds, 1 video round (a smoke run)')
    p.add_argument('--gap', type=float, default=0.1,
                   help='idle seconds before each timed request: a runtime whose idle threads spin (OpenMP, ONNX '
                        'Runtime by default) would otherwise take cores from the next system\'s request')
    p.add_argument('--systems', nargs='+', default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument('--json', default=None, help='write the raw numbers here')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.video_rounds = 2, 1
    return args


def fixture_images(shared):
    """The pipeline fixture images (paths), in the goldens' order."""
    folder = osp.join(shared, 'fixtures', 'paddlex', 'pipeline', 'picodet320_tinypose128x96', 'noflip')
    if not osp.isdir(folder):
        raise SystemExit(f'error: {folder} not found: the benchmark needs ../shared (or --shared / KPT_PLUGIN_SHARED)')
    stems = sorted(osp.splitext(f)[0] for f in os.listdir(folder) if f.endswith('.json'))
    paths = []
    for stem in stems:
        for sub in ('coco_val2017_mini', 'demo'):
            p = osp.join(shared, 'data', sub, f'{stem}.jpg')
            if osp.isfile(p):
                paths.append(p)
                break
        else:
            raise SystemExit(f'error: no image for fixture {stem} under {shared}/data')
    return paths


def write_video(paths, out):
    """A 30-frame video of the images (cycled, resized to 640x480); returns its path."""
    import cv2
    for fourcc, ext in (('mp4v', '.mp4'), ('MJPG', '.avi')):
        path = out + ext
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 30, VIDEO_SIZE)
        if not writer.isOpened():
            continue
        for i in range(FRAMES):
            writer.write(cv2.resize(cv2.imread(paths[i % len(paths)]), VIDEO_SIZE, interpolation=cv2.INTER_AREA))
        writer.release()
        cap = cv2.VideoCapture(path)
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if ok:
            return path
    raise SystemExit('error: OpenCV cannot write a readable mp4v or MJPG video here')


def machine_description(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')]
        cpu = f'{names[0]} x{len(names)} logical' if names else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    return f'machine: {cpu}; {threads} threads; load average {load:.2f} at start; python {platform.python_version()}'


# ----------------------------------------------------------------------------------------------- the systems
class OpenVinoIRs:
    """The peer's network runtime: the official IRs on OpenVINO (f32 hint), one compiled model per batch size."""

    def __init__(self, xml, threads):
        from kpt_plugin._compat import openvino_core
        self.core = openvino_core()
        self.model = self.core.read_model(xml)
        self.config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
                       'INFERENCE_NUM_THREADS': threads}
        self.requests = {}

    def request(self, n):
        if n not in self.requests:
            model = self.model.clone()
            shape = list(model.inputs[0].get_partial_shape().to_shape())
            model.reshape({model.inputs[0].any_name: [n] + shape[1:]})
            self.requests[n] = self.core.compile_model(model, 'CPU', self.config).create_infer_request()
        return self.requests[n]

    def __call__(self, x):
        req = self.request(x.shape[0])
        req.infer({0: x})
        return [req.get_output_tensor(i).data.copy() for i in range(len(req.model_outputs))]


class PaddleGraph:
    """The peer's network runtime: a Paddle inference model (oneDNN off: Paddle 3.3.1 fails on TinyPose with it)."""

    def __init__(self, model_file, params_file, threads):
        import paddle.inference as pi
        cfg = pi.Config(model_file, params_file)
        cfg.disable_mkldnn()
        cfg.disable_gpu()
        cfg.set_cpu_math_library_num_threads(threads)
        self.pred = pi.create_predictor(cfg)
        self.names = self.pred.get_input_names()

    def __call__(self, feeds):
        for name in self.names:
            self.pred.get_input_handle(name).copy_from_cpu(feeds[name])
        self.pred.run()
        return [self.pred.get_output_handle(n).copy_to_cpu() for n in self.pred.get_output_names()]


def build_system(kind, args):
    """The pipeline of system ``kind`` (a :class:`~kpt_plugin.inference.pipeline.KeypointPipeline`)."""
    import numpy as np
    import torch

    import kpt_plugin
    shared, size, s = args.shared, args.size, args.det
    det_dir = osp.join(shared, 'fixtures', 'picodet', f'picodet_s_{s}_lcnet_pedestrian_folded.pdparams')
    kpt_dir = osp.join(shared, 'weights', 'paddlex_inference_enhance', f'PP-TinyPose_{size}')
    extra = {}
    if kind == 'ours_hpip':
        extra = dict(use_hpip=True, hpi_config={'backend_config': {'cpu_num_threads': args.threads}})
    pipe = kpt_plugin.create_pipeline('human_keypoint_detection', det_model=f'PicoDet-S_pedestrian_{s}',
                                      det_model_dir=det_dir, kpt_model=f'PP-TinyPose_{size}', kpt_model_dir=kpt_dir,
                                      device='cpu', **extra)
    if kind in ('ours_torch', 'ours_hpip'):
        return pipe
    # peers: our pipeline object for the pre/post, only the two networks swapped
    det, kpt = pipe.det_model, pipe.kpt_model
    if kind == 'ov_ir':
        det_net = OpenVinoIRs(osp.join(shared, 'weights', 'picodet_s_lcnet_pedestrian_openvino_fp16', str(s),
                                       f'picodet_s_{s}_lcnet_pedestrian.xml'), args.threads)
        kpt_net = OpenVinoIRs(osp.join(shared, 'weights', 'pp_tinypose_enhance_openvino_fp16', size, 'model.xml'),
                              args.threads)

        def det_network(x):
            boxes, scores = det_net(x.numpy())
            return torch.from_numpy(boxes), torch.from_numpy(scores)

        det.network = det_network
        kpt.runner = lambda batch: kpt_net(np.ascontiguousarray(batch, np.float32))[0]
        return pipe
    if kind == 'paddle':
        pdir = osp.join(shared, 'weights', 'picodet_s_lcnet_pedestrian_paddle_inference', str(s))
        det_net = PaddleGraph(osp.join(pdir, 'model.json'), osp.join(pdir, 'model.pdiparams'), args.threads)
        kpt_net = PaddleGraph(osp.join(kpt_dir, 'inference.json'), osp.join(kpt_dir, 'inference.pdiparams'),
                              args.threads)
        from kpt_plugin.models.detection.preprocess import preprocess_image

        def detect(images, min_score=None):
            # Baidu's detector graph has the NMS inside: feed it image, im_shape and scale_factor
            t0 = time.perf_counter()
            out = []
            for img in images:
                x, factor = preprocess_image(img, s)
                feeds = dict(image=x, im_shape=np.array([[s, s]], np.float32),
                             scale_factor=np.asarray(factor, np.float32).reshape(1, 2))
                dets = det_net(feeds)[0].astype(np.float32).reshape(-1, 6)
                h, w = img.shape[:2]
                np.clip(dets[:, 2::2], 0, w, out=dets[:, 2::2])
                np.clip(dets[:, 3::2], 0, h, out=dets[:, 3::2])
                out.append(dets)
            det.timings['model'] += time.perf_counter() - t0
            return out

        det.detect = detect
        kpt.runner = lambda batch: kpt_net({kpt_net.names[0]: np.ascontiguousarray(batch, np.float32)})[0]
        return pipe
    raise KeyError(kind)


def _stage_totals(pipe):
    d, k = pipe.det_model.timings, pipe.kpt_model.timings
    return d['preprocess'] + d['model'] + d['postprocess'], k['preprocess'] + k['model']


def run_one(pipe, read):
    """One image through ``pipe``: (stage seconds, persons as [[x, y, score] * 17])."""
    t0 = time.perf_counter()
    img = read()
    t1 = time.perf_counter()
    det0, pose0 = _stage_totals(pipe)
    res = next(pipe.predict(img, errors='raise'))
    t2 = time.perf_counter()
    det1, pose1 = _stage_totals(pipe)
    det_s, pose_s = det1 - det0, pose1 - pose0
    stages = dict(decode=t1 - t0, detector=det_s, pose=pose_s, post=max(0.0, (t2 - t1) - det_s - pose_s))
    return stages, [b['keypoints'] for b in res['boxes']]


def worker(args):
    """Child process: build one system, report cold start, then serve ``image I`` / ``video`` / ``quit``."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # library output goes to stderr; replies go to the saved stdout
    reply = os.fdopen(reply_fd, 'w', buffering=1)
    import cv2
    import torch
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    paths = json.loads(os.environ['KPT_BENCH_IMAGES'])
    t0 = time.perf_counter()
    try:
        pipe = build_system(args.worker, args)
    except ImportError as e:
        reply.write(MARK + json.dumps(dict(error=f'not installed, not run ({e.name or e})')) + '\n')
        return 0
    build_s = time.perf_counter() - t0
    stages, persons = run_one(pipe, lambda: cv2.imread(paths[0], cv2.IMREAD_COLOR))
    # warm-up (not timed): every image once, so each batch size is built and, for hpip, tuned; then wait for the
    # background exports / tunings, so the timed rounds see the steady state
    for path in paths:
        run_one(pipe, lambda: cv2.imread(path, cv2.IMREAD_COLOR))
    if hasattr(pipe, 'wait'):
        pipe.wait()  # ours: the exports / tunings the warm-up deferred (rent-or-buy) start now
        for path in paths:
            run_one(pipe, lambda: cv2.imread(path, cv2.IMREAD_COLOR))
    for t in threading.enumerate():
        if t.name.startswith('kpt_plugin-'):
            t.join()
    reply.write(MARK + json.dumps(dict(build_s=build_s, first=stages, first_persons=persons)) + '\n')
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == 'image':
            path = paths[int(cmd[1])]
            stages, persons = run_one(pipe, lambda: cv2.imread(path, cv2.IMREAD_COLOR))
            out = dict(stages=stages, persons=persons)
        elif cmd[0] == 'video':
            cap = cv2.VideoCapture(cmd[1])
            sums, n, t = dict.fromkeys(STAGES, 0.0), 0, time.perf_counter()
            while True:
                # decode = grab (demux + decode) + retrieve (colour conversion)
                t_grab = time.perf_counter()
                if not cap.grab():
                    break
                grab_s = time.perf_counter() - t_grab
                stages, _ = run_one(pipe, lambda: cap.retrieve()[1])
                stages['decode'] += grab_s
                for k in STAGES:
                    sums[k] += stages[k]
                n += 1
            cap.release()
            out = dict(frames=n, seconds=time.perf_counter() - t, stages=sums)
        else:
            break
        reply.write(MARK + json.dumps(out) + '\n')
    return 0


class Worker:
    """The parent's handle on one system's process."""

    def __init__(self, kind, args, images):
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   KPT_BENCH_IMAGES=json.dumps(images))
        cmd = [sys.executable, osp.abspath(__file__), '--worker', kind, '--threads', str(args.threads),
               '--size', args.size, '--det', str(args.det), '--shared', args.shared]
        self.kind = kind
        self.t0 = time.perf_counter()
        self.log = tempfile.TemporaryFile(mode='w+')  # the worker's stderr, shown if it dies
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, bufsize=1, cwd=ROOT, env=env)

    def read(self):
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        rc = self.proc.wait()
        self.log.seek(0)
        raise RuntimeError(f'{self.kind}: the worker died (rc {rc}):\n{self.log.read()[-3000:]}')

    def ask(self, cmd):
        self.proc.stdin.write(cmd + '\n')
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('quit\n')
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------------------------- the parent
def max_keypoint_diff(a, b):
    """Largest |dx|, |dy| (px) between two images' persons; inf when the person counts differ."""
    import numpy as np
    if len(a) != len(b):
        return float('inf')
    if not a:
        return 0.0
    return float(np.abs(np.asarray(a)[..., :2] - np.asarray(b)[..., :2]).max())


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    images = fixture_images(args.shared)
    print(machine_description(args.threads))
    print(f'pipeline: PicoDet-S pedestrian {args.det} -> PP-TinyPose {args.size}, flip off, det threshold 0.5, '
          f'batch 1; {len(images)} images, video {FRAMES} frames {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}; '
          f'{args.rounds} image rounds, {args.video_rounds} video rounds{" (--quick)" if args.quick else ""}')
    results = {k: dict(samples=[], video=[]) for k in args.systems}
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(images, osp.join(tmp, 'frames'))
        workers = {}
        # cold start one system at a time: a fresh process builds the model and runs the first image
        for kind in args.systems:
            w = Worker(kind, args, images)
            first = w.read()
            if 'error' in first:
                results[kind]['error'] = first['error']
                w.close()
                continue
            results[kind].update(cold=dict(build_s=first['build_s'], first=first['first']))
            workers[kind] = w
        try:
            kinds = list(workers)
            reference = {}
            for i in range(len(images)):  # warm-up (compiles the peers' per-batch models) + the parity check
                for kind in kinds:
                    out = workers[kind].ask(f'image {i}')
                    if kind == kinds[0]:
                        reference[i] = out['persons']
                    results[kind].setdefault('parity_px', 0.0)
                    results[kind]['parity_px'] = max(results[kind]['parity_px'],
                                                     max_keypoint_diff(out['persons'], reference[i]))
            for r in range(args.rounds):
                order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
                for i in range(len(images)):
                    for kind in order:
                        time.sleep(args.gap)  # the previous system's idle threads stop spinning first
                        results[kind]['samples'].append((i, workers[kind].ask(f'image {i}')['stages']))
            for r in range(args.video_rounds):
                order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
                for kind in order:
                    time.sleep(args.gap)
                    results[kind]['video'].append(workers[kind].ask(f'video {video}'))
        finally:
            for w in workers.values():
                w.close()
    report(args, images, results)
    if args.json:
        from weight_convert.io import atomic_write_json
        atomic_write_json(args.json, dict(args=vars(args), results=results))
    return 0


def summarise(res):
    """Mean over the images of each image's median (ms), per stage and end to end; video fps (median round)."""
    per = {}
    for i, st in res['samples']:
        per.setdefault(i, []).append(st)
    stage_ms = {k: statistics.fmean(statistics.median(s[k] for s in per[i]) * 1e3 for i in per) for k in STAGES}
    e2e = statistics.fmean(statistics.median(sum(s.values()) for s in per[i]) * 1e3 for i in per)
    fps = statistics.median(v['frames'] / v['seconds'] for v in res['video']) if res['video'] else float('nan')
    vid = min(res['video'], key=lambda v: v['seconds']) if res['video'] else None
    vid_ms = {k: vid['stages'][k] / vid['frames'] * 1e3 for k in STAGES} if vid else {}
    return dict(e2e_ms=e2e, stage_ms=stage_ms, fps=fps, video_stage_ms=vid_ms)


def report(args, images, results):
    summ = {k: summarise(v) for k, v in results.items() if 'error' not in v}
    peers = [k for k in PEERS if k in summ]
    best = min(peers, key=lambda k: summ[k]['e2e_ms']) if peers else None
    print('\n## Steady state (ms per image: mean over the images of the per-image median)\n')
    ref = SYSTEMS[next(iter(summ))] if summ else ''  # the parity reference: the first system that ran
    print('| system | end to end ms | ' + ' | '.join(STAGES) + ' | ratio vs best fp32 peer | video fps | '
          f'max keypoint diff vs {ref} (px) |')
    print('|---|---|' + '---|' * len(STAGES) + '---|---|---|')
    for kind, res in results.items():
        name = SYSTEMS[kind]
        if 'error' in res:
            print(f'| {name} | {res["error"]} |' + ' |' * (len(STAGES) + 3))
            continue
        s = summ[kind]
        ratio = f'{s["e2e_ms"] / summ[best]["e2e_ms"]:.2f}x' if best else 'no peer ran'
        print(f'| {name} | {s["e2e_ms"]:.1f} | ' + ' | '.join(f'{s["stage_ms"][k]:.1f}' for k in STAGES)
              + f' | {ratio} | {s["fps"]:.1f} | {res["parity_px"]:.2g} |')
    print('\n## Video (30 frames, per frame ms of the fastest round)\n')
    print('| system | fps | ' + ' | '.join(STAGES) + ' |')
    print('|---|---|' + '---|' * len(STAGES))
    for kind, s in summ.items():
        print(f'| {SYSTEMS[kind]} | {s["fps"]:.1f} | ' + ' | '.join(f'{s["video_stage_ms"][k]:.1f}' for k in STAGES)
              + ' |')
    print('\n## Cold start (fresh process: build, then the first image)\n')
    print('| system | build s | first image ms | ' + ' | '.join(STAGES) + ' |')
    print('|---|---|---|' + '---|' * len(STAGES))
    for kind, res in results.items():
        if 'cold' in res:
            c = res['cold']
            print(f'| {SYSTEMS[kind]} | {c["build_s"]:.2f} | {sum(c["first"].values()) * 1e3:.1f} | '
                  + ' | '.join(f'{c["first"][k] * 1e3:.1f}' for k in STAGES) + ' |')
    if best:
        for kind in ('ours_torch', 'ours_hpip'):
            if kind in summ:
                r = summ[kind]['e2e_ms'] / summ[best]['e2e_ms']
                print(f'\n{SYSTEMS[kind]} / {SYSTEMS[best]} end to end: {r:.2f}x (target <= 0.8x: '
                      f'{"met" if r <= 0.8 else "NOT met"})', end='')
        print()


if __name__ == '__main__':
    sys.exit(main())
