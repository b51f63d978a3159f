"""What the exported-graph runtimes share: fixed-batch graphs per batch bucket (exported once, cached), or one user
file; each runtime adapter only says how to load, inspect and run a graph."""
import os
import os.path as osp

import numpy as np
import torch

from ...errors import BackendError

__all__ = ['GraphBackend']


class GraphBackend:
    """Shared by the exported-graph backends: fixed-batch graphs per batch bucket, or one user file.

    Without ``onnx_path`` the model is exported once per batch size in (1, 2, 4, 8, 16) with a FIXED batch
    (the runtimes then fold all shape arithmetic away: about 2x faster on CPU than a dynamic-batch graph) and
    cached; a batch of n crops runs as the largest sizes that sum to n (11 = 8 + 2 + 1, no padding).
    With ``onnx_path`` that file is used: dynamic batch as is, a fixed batch B in chunks of B (last one padded).
    """

    name = runtime = None
    BUCKETS = (16, 8, 4, 2, 1)

    def __init__(self, onnx_path, threads, pose_model, checkpoint, input_size, flip):
        self.threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
        self._export_args = (pose_model, checkpoint, input_size, flip)
        self.sessions = {}
        self.onnx_path = onnx_path
        self.user_file = onnx_path is not None
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
        if size not in self.sessions:
            from ..onnx_export import cached_onnx
            pose_model, checkpoint, input_size, flip = self._export_args
            path = cached_onnx(pose_model, checkpoint, input_size, flip=flip, batch_size=size, runtime=self.runtime)
            self.sessions[size] = self._load(path)
            self.onnx_path = path
        return self.sessions[size]

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
        outs, i = [], 0
        while i < n:
            size = next(b for b in self.BUCKETS if b <= n - i)
            outs.append(self._run(self._bucket_session(size), batch[i:i + size]))
            i += size
        return outs[0] if len(outs) == 1 else np.concatenate(outs)
