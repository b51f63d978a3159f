"""What the exported-graph runtimes share: fixed-batch graphs per batch bucket (exported once, cached), or one user
file; each runtime adapter only says how to load, inspect and run a graph."""
import logging
import os
import os.path as osp
import threading

import numpy as np
import torch

from ...errors import BackendError
from .background import BackgroundQueue

__all__ = ['GraphBackend']

logger = logging.getLogger('kpt_plugin')


class GraphBackend:
    """Shared by the exported-graph backends: fixed-batch graphs per batch bucket, or one user file.

    Without ``onnx_path`` the model is exported once per batch size in (1, 2, 4, 8, 16) with a FIXED batch
    (the runtimes then fold all shape arithmetic away: about 2x faster on CPU than a dynamic-batch graph) and
    cached; a batch of n crops runs as the largest sizes that sum to n (11 = 8 + 2 + 1, no padding).
    With ``onnx_path`` that file is used: dynamic batch as is, a fixed batch B in chunks of B (last one padded).

    Background (``background_export``, default on for fp32): exporting a bucket costs seconds, and even loading its
    cached graph ~0.1-0.5 s (OpenVINO: importing the runtime, then the compiled blob), many times what the eager
    network needs for a batch. So a bucket without a loaded graph runs on the torch net (the torch backend without
    tracing: the same fp32 model, heatmaps within 1e-5) and one background thread exports or loads it by the
    rent-or-buy rule (:class:`~.background.BackgroundQueue`): once that bucket's eager calls have taken
    :attr:`EXPORT_AFTER_S` (graph not cached yet) or :attr:`LOAD_AFTER_S` (cached) seconds. A script that runs a few
    images never waits for a graph; a long run switches after its first seconds. Each bucket switches to its graph as
    soon as it is loaded. The thread is not a daemon: a process waits for an export it started before it exits, so
    the next process finds the cache warm. :meth:`wait` starts the deferred exports / loads and blocks until they
    are done (what a benchmark's warm-up wants).
    """

    name = runtime = None
    BUCKETS = (16, 8, 4, 2, 1)
    #: export missing buckets in the background (fp32 only: reduced-precision subclasses keep their own graphs)
    background_export = True
    #: eager seconds on a bucket before its export starts: an export + load takes ~1-3 s on 2 cores and the graph
    #: then saves ~50-70 % of each eager call, so the rent pays for it after about 1.5x its cost
    EXPORT_AFTER_S = 3.0
    #: eager seconds on a bucket before its cached graph is loaded (~0.1-0.5 s, the same rule)
    LOAD_AFTER_S = 0.5
    #: where the fallback torch net runs (the ONNX Runtime adapter sets its CUDA device)
    device = 'cpu'

    def __init__(self, onnx_path, threads, pose_model, checkpoint, input_size, flip):
        self.threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
        self._export_args = (pose_model, checkpoint, input_size, flip)
        self.sessions = {}
        self.onnx_path = onnx_path
        self.user_file = onnx_path is not None
        self._lock = threading.Lock()
        self._exports = BackgroundQueue(self._bucket_session, 'kpt_plugin-export',
                                        f'{self.name}: exporting the batch-%d graph')
        self._fallback = None
        if self.user_file:
            onnx_path = os.fspath(onnx_path)
            if not osp.isfile(onnx_path):
                raise BackendError(f'{onnx_path}: no such model file; write one with `kpt-plugin export` or '
                                   'leave onnx_path out (the graph is then exported for you)')
            try:
                self._check_file(onnx_path)
                sess = self._load(onnx_path)
            except Exception as e:  # each runtime raises its own types for unreadable files
                # OpenVINO prefixes its reason with source locations; keep the reason
                lines = [ln for ln in str(e).strip().splitlines()
                         if ln.strip() and not ln.startswith(('Exception from', 'Check '))]
                first = (lines or [type(e).__name__])[0][:200]
                raise BackendError(f'{onnx_path}: {self.name} cannot load this model ({first}); pass an ONNX file '
                                   'from `kpt-plugin export` (or an OpenVINO IR .xml for openvino)') from None
            names, dim = self._inputs(sess)
            if len(names) != 1:
                raise BackendError(f'{onnx_path}: expected a heatmap graph with one input "image" (export it '
                                   'without --with-decode)')
            self.fixed = dim if isinstance(dim, int) else None
            self.sessions[self.fixed] = sess

    def _load(self, path):
        raise NotImplementedError

    @staticmethod
    def _check_file(path):
        """Raise when ``path`` is not a model this runtime should be given."""

    @staticmethod
    def _inputs(sess):
        """(input names, batch dimension: int when fixed)."""
        raise NotImplementedError

    @staticmethod
    def _run(sess, x):
        raise NotImplementedError

    def _bucket_session(self, size):
        """The session of bucket ``size``, exported (or read from the cache) and loaded now if needed."""
        if size not in self.sessions:
            from ..onnx_export import cached_onnx
            pose_model, checkpoint, input_size, flip = self._export_args
            path = cached_onnx(pose_model, checkpoint, input_size, flip=flip, batch_size=size, runtime=self.runtime)
            sess = self._load(path)
            with self._lock:
                self.sessions[size] = sess
                self.onnx_path = path
        return self.sessions[size]

    # ------------------------------------------------------------------ cold cache: export in the background
    def _in_background(self):
        return self.background_export and getattr(self, 'precision', 'fp32') == 'fp32'

    def _cached(self, size):
        """Whether bucket ``size``'s graph is complete in the cache (its ``.sha256`` record is written last)."""
        from ..onnx_export import cached_onnx_path
        _, checkpoint, input_size, flip = self._export_args
        path = cached_onnx_path(checkpoint, input_size, flip=flip, batch_size=size, runtime=self.runtime)
        return osp.isfile(path + '.sha256')

    def _session_now(self, size):
        """The session of ``size`` if loaded (or loaded now, when nothing runs in the background), else None."""
        self._exports.raise_error()
        sess = self.sessions.get(size)
        if sess is not None or not self._in_background():
            return sess if sess is not None else self._bucket_session(size)
        return None

    @property
    def _thread(self):
        return self._exports.thread

    def wait(self):
        """Block until the background exports asked for so far are loaded; re-raises an export's error."""
        self._exports.wait()

    def _fallback_net(self):
        if self._fallback is None:
            from .torch import TorchBackend
            pose_model, _, _, flip = self._export_args
            # folds a copy: the export thread deep-copies the unfolded model
            self._fallback = TorchBackend(pose_model, self.device, flip=flip, jit=False, fold_copy=True)
        return self._fallback

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        n = batch.shape[0]
        if self.user_file:
            if self.fixed is None:
                return self._run(self.sessions[None], batch)
            outs = []
            for i in range(0, n, self.fixed):
                part = batch[i:i + self.fixed]
                k = part.shape[0]
                if k < self.fixed:
                    part = np.concatenate([part, np.zeros((self.fixed - k, ) + part.shape[1:], np.float32)])
                outs.append(self._run(self.sessions[self.fixed], part)[:k])
            return np.concatenate(outs)
        plan, i = [], 0
        while i < n:
            size = next(b for b in self.BUCKETS if b <= n - i)
            plan.append((i, size))
            i += size
        outs, missing = [None] * len(plan), []
        for j, (i, size) in enumerate(plan):
            sess = self._session_now(size)
            if sess is None:
                missing.append(j)
            else:
                outs[j] = self._run(sess, batch[i:i + size])
        if missing:  # all parts without a graph yet in one eager call
            rows = np.concatenate([batch[plan[j][0]:plan[j][0] + plan[j][1]] for j in missing])
            fallback = self._fallback_net()
            hms, k = fallback(rows), 0
            per_row = fallback.last_rent_s / len(rows)
            for j in missing:
                outs[j] = hms[k:k + plan[j][1]]
                k += plan[j][1]
            for j in sorted(missing, key=lambda j: -plan[j][1]):
                size = plan[j][1]
                if size not in self.sessions:
                    self._exports.rent(size, per_row * size, self.LOAD_AFTER_S if self._cached(size)
                                       else self.EXPORT_AFTER_S)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)
