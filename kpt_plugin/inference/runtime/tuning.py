"""``backend='auto'`` / ``use_hpip=True``: measure the candidate (backend, fold plan) pairs on THIS machine once, keep
the fastest.

The fastest runtime depends on the CPU (the same graph is 0.45x on one EPYC and 1.2x on another against the same
peer), the input size, the batch and the thread count, so a static pick is wrong somewhere. :class:`AutoBackend`
measures every candidate the first time a batch bucket comes (warmup, then interleaved repeats so drift hits all
candidates alike; median; the first candidate wins ties within :data:`PRIOR_MARGIN`), checks the winner's heatmaps
against the unfolded fp32 torch net (<= 1e-4 for fp32), and caches winner + measurements in
``$KPT_PLUGIN_HOME/tuning.json`` keyed by (model, input size, flip, batch bucket, threads, device, precision, CPU
model with its family / model ids, ISA flags, runtime versions). ``kpt-plugin tune`` fills the cache ahead of time.

Tuning a bucket costs 10-20 s on a cold cache (every candidate exported, compiled and timed), 10-100x what the
eager network needs for a batch. So with a ``fallback`` (what a predictor uses for fp32) a bucket that is neither
tuned nor cached runs on it (the torch net, eager: the same fp32 model), and one thread tunes the bucket by the
rent-or-buy rule (:class:`~.background.BackgroundQueue`) once its eager calls have taken
:attr:`AutoBackend.TUNE_AFTER_S` seconds; the bucket switches to its winner once measured. ``kpt-plugin tune`` does
it ahead of time, and :meth:`AutoBackend.wait` at once. Candidates are shared by the tuning thread and the callers,
so each runs under its own lock (an OpenVINO infer request must not run twice at once).
"""
import datetime
import functools
import importlib.util
import json
import logging
import os.path as osp
import platform
import statistics
import threading
import time

import numpy as np

from ...errors import BackendError
from .background import BackgroundQueue

__all__ = ['CANDIDATES', 'INT8_CANDIDATES', 'AutoBackend', 'cpu_model', 'cpu_flags', 'cache_path', 'load_cache',
           'measure', 'rank', 'tuning_key', 'PARITY_ATOL', 'PRIOR_MARGIN']

logger = logging.getLogger('kpt_plugin')

#: (backend, fold plan) pairs tried for fp32; the plan is a key of ``folding.FOLD_PLANS``
CANDIDATES = (('openvino', 'openvino'), ('openvino', 'onnxruntime'), ('onnxruntime', 'onnxruntime'),
              ('onnxruntime', 'openvino'), ('torch', 'torch'))
#: int8 (static QDQ graph, :mod:`kpt_plugin.inference.quantize`) runs on these runtimes
INT8_CANDIDATES = (('onnxruntime', 'int8'), ('openvino', 'int8'))
#: fp32 parity of a tuned choice: max |heatmap - unfolded torch fp32|
PARITY_ATOL = 1e-4
#: another candidate is chosen over the first one (the prior: our graph on OpenVINO was the fastest fp32 backend in
#: 14 of the 16 cells of four benchmark runs on Xeon and AMD EPYC hosts, one of the two others a 1 % tie) only when
#: measured faster by more than this fraction: closer than that is the tuning's own noise (a tuning picked ONNX
#: Runtime at 256x192 batch 8 where the benchmark then timed our graph on OpenVINO 6 % faster)
PRIOR_MARGIN = 0.05
#: batch sizes a choice is tuned for (a batch of n uses the choice of the largest bucket <= n)
BUCKETS = (1, 2, 4, 8, 16)
CACHE_FORMAT = 'kpt_plugin-tuning'
CACHE_VERSION = 2  # 2: ONNX Runtime sessions without spinning threads (timings of 1 do not hold)
#: one tuning at a time in a process (the keypoint model's and the detector's would time each other's load)
_TUNE_LOCK = threading.Lock()
#: the ISA features that decide which kernels the runtimes pick
ISA_FLAGS = ('avx2', 'avx_vnni', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_int8')


@functools.lru_cache(maxsize=1)
def _cpuinfo():
    # read once per process: every call of an untuned bucket builds its cache key
    try:
        with open('/proc/cpuinfo') as f:
            return f.read()
    except OSError:
        return ''


def _cpu_fields():
    """``key: value`` lines of the first processor's block of ``/proc/cpuinfo`` (every block says the same)."""
    fields = {}
    for line in _cpuinfo().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model():
    """The CPU's model name with its family / model / stepping (``/proc/cpuinfo``; ``platform.processor()``
    elsewhere).

    The numbers tell the microarchitecture when the name does not: this project's VMs said just "AMD EPYC" on
    Zen 3 (family 25, model 1) and on Zen 5 hosts, and a VM may hide the ISA flags that would tell them apart.
    """
    fields = _cpu_fields()
    name = fields.get('model name')
    if not name:
        return platform.processor() or platform.machine() or 'unknown'
    ids = [f'{k} {fields[k]}' for k in ('cpu family', 'model', 'stepping') if fields.get(k)]
    return f'{name} ({", ".join(ids)})' if ids else name


def cpu_flags():
    """The :data:`ISA_FLAGS` this CPU has (a "model name" like "AMD EPYC" alone does not tell Zen 2 from Zen 5)."""
    have = set(_cpu_fields().get('flags', '').split())
    return [f for f in ISA_FLAGS if f in have]


@functools.lru_cache(maxsize=1)
def _runtime_versions():
    # from the installed metadata (importing openvino only to read its version cost a warm start ~0.5 s), once per
    # process: reading it cost ~8 ms of every call on an untuned bucket
    import importlib.metadata
    out = []
    for name in ('torch', 'onnxruntime', 'openvino'):
        try:
            out.append(f'{name}{importlib.metadata.version(name)}')
        except importlib.metadata.PackageNotFoundError:
            pass
    return '+'.join(out)


def tuning_key(arch, input_size, flip, bucket, threads, device='cpu', precision='fp32'):
    """The cache key of one tuning: everything the winner depends on."""
    w, h = input_size
    return '|'.join([arch, f'{h}x{w}', 'flip' if flip else 'noflip', f'b{bucket}', f't{threads}', device, precision,
                     cpu_model(), ','.join(cpu_flags()), _runtime_versions()])


def cache_path():
    """``$KPT_PLUGIN_HOME/tuning.json``."""
    from ...zoo.hub import cache_dir
    return osp.join(cache_dir(), 'tuning.json')


def load_cache(path=None):
    """The cache's ``entries`` dict; a missing file gives ``{}``, a corrupt or foreign one is logged and ignored
    (the next write replaces it)."""
    path = path or cache_path()
    if not osp.isfile(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if (not isinstance(data, dict) or data.get('format') != CACHE_FORMAT or data.get('version') != CACHE_VERSION
                or not isinstance(data.get('entries'), dict)):
            raise ValueError('not a kpt_plugin tuning cache of this version')
        return data['entries']
    except (OSError, ValueError, UnicodeDecodeError) as e:
        logger.warning('%s: ignoring the backend tuning cache (%s); it is rebuilt', path, e)
        return {}


def _store(key, entry, path=None):
    from weight_convert.io import atomic_write_json
    path = path or cache_path()
    entries = load_cache(path)
    entries[key] = entry
    atomic_write_json(path, dict(format=CACHE_FORMAT, version=CACHE_VERSION, entries=entries))


def measure(runners, batch, budget_s=0.6, warmup=2, block=4, min_rounds=3, max_rounds=30):
    """Median ms per call of each runner on ``batch``: ``warmup`` calls each, then rounds of one block per runner
    (A A A A B B B B ... A A A A ...) until each had ~``budget_s`` of timed calls (at least ``min_rounds``).

    The first call of a block is not timed: the runner before it may still hold the cores (idle OpenMP / TBB
    threads spin for a while after their work) and its own caches are cold. One call per runner in turn measured
    the neighbours: in a run on 2 cores it ranked a plan first that the benchmark then timed 1.5x slower.

    Returns:
        dict: name -> median ms.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn(batch)
    times = {name: [] for name in runners}
    rounds = 0
    while True:
        for name, fn in runners.items():
            fn(batch)
            for _ in range(max(1, block - 1)):
                t0 = time.perf_counter()
                fn(batch)
                times[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        spent = min(sum(t) for t in times.values()) / 1e3
        if rounds >= max_rounds or (rounds >= min_rounds and spent >= budget_s):
            break
    return {name: statistics.median(t) for name, t in times.items()}


def _max_abs_diff(out, ref):
    if isinstance(out, (tuple, list)):
        return max(_max_abs_diff(o, r) for o, r in zip(out, ref))
    return float(np.abs(np.asarray(out) - np.asarray(ref)).max())


def _finite(out):
    if isinstance(out, (tuple, list)):
        return all(_finite(o) for o in out)
    return bool(np.isfinite(out).all())


def _label(pair):
    return f'{pair[0]}/{pair[1]}'


def rank(ms, prior=None, margin=PRIOR_MARGIN):
    """Labels of ``ms`` (label -> ms) fastest first, except that ``prior`` comes first while it is within ``margin``
    of the fastest (see :data:`PRIOR_MARGIN`)."""
    order = sorted(ms, key=ms.get)
    if prior in ms and ms[prior] <= ms[order[0]] * (1 + margin):
        order.remove(prior)
        order.insert(0, prior)
    return order


def available(candidates, device='cpu'):
    """The candidates whose runtime is installed and runs on ``device``."""
    out = []
    for backend, plan in candidates:
        if backend != 'torch' and importlib.util.find_spec(backend) is None:
            continue
        if backend == 'openvino' and device != 'cpu':
            continue
        out.append((backend, plan))
    return out


class AutoBackend:
    """The runner of ``backend='auto'``: per batch bucket, the measured-fastest candidate (cached on disk).

    Args:
        factory: ``(backend, plan) -> runner`` (a callable ``batch -> heatmaps``).
        reference: ``batch -> heatmaps`` of the unfolded fp32 torch net (parity check of a fresh winner).
        arch (str): model architecture name (cache key).
        input_size (tuple): (w, h).
        flip (bool), threads (int), device (str), precision (str): cache key parts.
        candidates: (backend, plan) pairs to try; default :data:`CANDIDATES` (installed ones).
        fallback: ``batch -> heatmaps`` that answers an untuned bucket while it is tuned in the background (fp32
            only; None = tune before answering).
        atol (float): fp32 parity of a winner, max |output - reference| (default :data:`PARITY_ATOL`). Runners may
            return an array or a tuple of arrays (the detector: boxes, scores).
    """

    name = 'auto'
    #: name of the tuning thread (non-daemon: a process waits for a tuning it started, so the next one is warm)
    THREAD_NAME = 'kpt_plugin-tune'
    #: eager seconds on an untuned bucket before its tuning starts: a cold tuning takes 10-20 s of both cores and
    #: the winner saves ~50-70 % of each eager call (the rent-or-buy rule, as the graph backends' exports)
    TUNE_AFTER_S = 15.0

    def __init__(self, factory, reference, arch, input_size, flip=False, threads=1, device='cpu', precision='fp32',
                 candidates=None, fallback=None, atol=PARITY_ATOL):
        self.factory, self.reference = factory, reference
        self.arch, self.input_size, self.flip = arch, tuple(input_size), bool(flip)
        self.threads, self.device, self.precision = int(threads), device, precision
        if candidates is None:
            candidates = dict(int8=INT8_CANDIDATES, bf16=(('openvino', 'bf16'), )).get(precision, CANDIDATES)
        self.candidates = available(candidates, device)
        if not self.candidates:
            raise BackendError(f'backend auto: no runtime for {device} is installed; pip install openvino or '
                               'onnxruntime, or pass backend="torch"')
        self.choices = {}  # bucket -> (backend, plan)
        self.tables = {}  # bucket -> {label: ms}
        self._runners = {}
        self._locks = {}  # pair -> lock around building / running that candidate
        self._lock = threading.Lock()
        self.fallback = fallback if precision == 'fp32' else None
        self.atol = float(atol)
        self._tunings = BackgroundQueue(self.tune, self.THREAD_NAME, 'backend auto: tuning batch %d')

    # ------------------------------------------------------------------ helpers
    def _pair_lock(self, pair):
        with self._lock:
            return self._locks.setdefault(tuple(pair), threading.Lock())

    def runner(self, pair):
        """The (built once) runner of a candidate, called under its lock."""
        pair = tuple(pair)
        lock = self._pair_lock(pair)
        with lock:
            if pair not in self._runners:
                self._runners[pair] = self.factory(*pair)
            fn = self._runners[pair]

        def locked(batch):
            with lock:
                return fn(batch)
        locked.inner = fn
        return locked

    def key(self, bucket):
        return tuning_key(self.arch, self.input_size, self.flip, bucket, self.threads, self.device, self.precision)

    @staticmethod
    def bucket_of(n):
        return max(b for b in BUCKETS if b <= max(1, n))

    def _sample(self, bucket):
        w, h = self.input_size
        # a normalised image batch: roughly N(0, 1) per channel, fixed so every tuning sees the same input
        return np.random.default_rng(0).standard_normal((bucket, 3, h, w)).astype(np.float32)

    # ------------------------------------------------------------------ tuning
    def tune(self, bucket, force=False, cached_only=False):
        """The choice for ``bucket``: from the cache unless ``force``, else measured (and cached).

        Args:
            cached_only (bool): return None instead of measuring when the cache has no choice.

        Returns:
            tuple: (backend, plan).
        """
        key = self.key(bucket)
        labels = {_label(p): p for p in self.candidates}
        entry = None if force else load_cache().get(key)
        if isinstance(entry, dict) and entry.get('winner') in labels:
            how = 'cached'
        elif cached_only:
            return None
        else:
            with _TUNE_LOCK:
                entry = None if force else load_cache().get(key)  # another predictor may have just tuned it
                if not (isinstance(entry, dict) and entry.get('winner') in labels):
                    entry = self._measure_entry(bucket, labels)
                    _store(key, entry)
            how = 'measured'
        pair = labels[entry['winner']]
        self.choices[bucket], self.tables[bucket] = pair, entry.get('ms', {})
        logger.info('backend auto (%s, %s, batch %d, %d threads): %s, %s (%s)', self.arch, self.precision, bucket,
                    self.threads, entry['winner'], how,
                    ', '.join(f'{k} {v:.2f} ms' for k, v in sorted(entry.get('ms', {}).items(), key=lambda kv: kv[1])))
        return pair

    def _measure_entry(self, bucket, labels):
        batch = self._sample(bucket)
        runners, failed = {}, {}
        for label, pair in labels.items():
            try:
                fn = self.runner(pair)
                fn(batch)  # builds / exports the bucket's graph outside the timing
                wait = getattr(fn.inner, 'wait', None)
                if wait is not None:
                    wait()  # a graph runner may export in the background and run torch meanwhile: time the graph
                runners[label] = fn
            except Exception as e:  # noqa: BLE001 - a candidate that cannot run here is just not chosen
                failed[label] = f'{type(e).__name__}: {str(e)[:120]}'
                logger.info('backend auto: %s cannot run here (%s)', label, failed[label])
        if not runners:
            raise BackendError(f'backend auto: no candidate runs here ({failed}); pass an explicit backend')
        ms = measure(runners, batch)
        ref = self.reference(batch) if self.reference is not None else None
        diffs = {}
        winner = None
        for label in rank(ms, prior=_label(self.candidates[0])):
            out = runners[label](batch)
            diff = _max_abs_diff(out, ref) if ref is not None else 0.0
            diffs[label] = diff
            # fp32 must be the fp32 model; reduced precision is checked for sanity only (its cost is in docs)
            ok = _finite(out) and (self.precision != 'fp32' or diff <= self.atol)
            if ok:
                winner = label
                break
            logger.warning('backend auto: %s is fastest but its heatmaps differ by %.2g from torch fp32; skipped',
                           label, diff)
        if winner is None:
            raise BackendError(f'backend auto: no candidate passed the parity check ({diffs}); pass an explicit '
                               'backend')
        return dict(winner=winner, ms={k: round(v, 4) for k, v in ms.items()}, max_abs_diff=diffs, failed=failed,
                    when=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))

    # ------------------------------------------------------------------ background tuning
    def _tune_later(self, bucket, seconds):
        if self._tunings.rent(bucket, seconds, self.TUNE_AFTER_S):
            logger.info('backend auto (%s): tuning batch %d in the background (the eager torch net answers '
                        'meanwhile; `kpt-plugin tune` does it ahead of time)', self.arch, bucket)

    @property
    def _thread(self):
        return self._tunings.thread

    def wait(self):
        """Start the deferred tunings and block until they and the chosen graph runners' background work are done;
        re-raises a tuning's error."""
        self._tunings.wait()
        for pair in list(self.choices.values()):
            wait = getattr(self.runner(pair).inner, 'wait', None)
            if wait is not None:
                wait()

    # ------------------------------------------------------------------ running
    def __call__(self, batch):
        bucket = self.bucket_of(len(batch))
        pair = self.choices.get(bucket)
        if pair is None:
            self._tunings.raise_error()
            if self.fallback is None:
                pair = self.tune(bucket)
            else:
                pair = None if self._tunings.pending(bucket) else self.tune(bucket, cached_only=True)
                if pair is None:
                    # the tuning starts after this answer: exports hold the GIL and both cores for seconds, and
                    # started first they made the first result 3x later
                    t0 = time.perf_counter()
                    out = self.fallback(batch)
                    # a TorchBackend says what of its call is rent; a plain function (the detector's): all of it
                    self._tune_later(bucket, getattr(self.fallback, 'last_rent_s', time.perf_counter() - t0))
                    return out
        return self.runner(pair)(batch)

    @property
    def onnx_path(self):
        """The graph file the last chosen graph runner used (None for torch / before the first batch)."""
        for pair in self.choices.values():
            path = getattr(self.runner(pair).inner, 'onnx_path', None)
            if path:
                return path
        return None

    def describe(self):
        """``'b1=openvino/openvino, b8=onnxruntime/onnxruntime'``, or ``'untuned'`` before the first batch."""
        if not self.choices:
            return 'untuned'
        return ', '.join(f'b{b}={_label(p)}' for b, p in sorted(self.choices.items()))
