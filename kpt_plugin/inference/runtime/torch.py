"""The PyTorch runtime: the folded network in eager mode, traced and frozen once an input shape is frequent on CPU."""
import time
import warnings

import torch

from ..folding import fold_for_inference
from ..nets import FlipFusedNet, HeatmapNet

__all__ = ['TorchBackend']


class TorchBackend:
    """PyTorch: BN, channel shuffles, fuse-layer sums and the stem folded into the convs, channels_last, flip fused into
    the batch, ``inference_mode``. With ``jit`` (default on CPU) the net is traced and frozen (TorchScript)
    on the ``trace_after``-th batch of an input shape; until then it runs eager.

    Why not sooner: trace + freeze costs as much as 10-20 eager batches of that shape (1-7 s, measured on 2 shared
    cores) and saves 10-25 % per batch afterwards, so it pays back after roughly 50-150 batches of the shape.
    Tracing on the :attr:`TRACE_AFTER`-th batch (the rent-or-buy rule: buy once the rent paid would have covered
    the price) never costs more than about twice the better of "always eager" and "trace at once", and keeps the
    first batches of a new shape (a fresh process, a new number of persons) at eager speed.

    The folds themselves follow the same rule: they take ~0.2-0.4 s and make a batch about 2x faster, so the
    first batches run the unfolded net until they have taken :attr:`FOLD_AFTER_S` seconds (twice the fold cost:
    the time they would have saved folded; the first batch is not counted, most of it is one-time kernel set-up that
    folding would not save), then the net is folded (``fold_after_s=0``: at once). Every stage is
    the same fp32 model (heatmaps within 1e-5).

    With ``fold_copy`` the folds apply to a copy (made then, ~0.2 s): the pose model stays unfolded for the exports
    that run beside this net (the graph backends' stand-in), and a short run never pays for the copy.
    """

    name = 'torch'
    #: batches of one shape that run eager before it is traced (see the class docstring)
    TRACE_AFTER = 64

    #: eager seconds on the unfolded net before the folds run (see the class docstring)
    FOLD_AFTER_S = 0.5

    def __init__(self, pose_model, device='cpu', flip=False, fold_bn=True, channels_last=True, jit=True,
                 trace_after=None, fold_after_s=None, fold_copy=False):
        self._plain = HeatmapNet(pose_model).eval()
        self.fold_copy = fold_copy
        self.flip, self.device = flip, device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.jit = jit and str(device).startswith('cpu')  # measured on CPU only
        self.trace_after = max(1, int(self.TRACE_AFTER if trace_after is None else trace_after))
        self.fold_after_s = float(self.FOLD_AFTER_S if fold_after_s is None else fold_after_s)
        self._traced = {}  # shape -> batches seen so far (int), then the traced module
        self._eager_s = 0.
        self.calls = 0
        #: seconds of the last batch that count as rent for the work that would speed it up (fold, export, tuning);
        #: 0 for the first batch, mostly one-time kernel set-up that none of them saves
        self.last_rent_s = 0.
        self.folded = not fold_bn
        self._wrap()
        if fold_bn and self.fold_after_s <= 0:
            self.fold()

    def _wrap(self):
        net = FlipFusedNet(self._plain) if self.flip else self._plain
        # channels_last pays off on the folded net; converting the unfolded one cost ~0.06 s of every build and
        # made its first batches no faster
        self._format = self.memory_format if self.folded else torch.contiguous_format
        self.net = net.to(self.device).eval().to(memory_format=self._format)

    def fold(self):
        """Apply the folds now (in place, on the pose model's modules); idempotent."""
        if not self.folded:
            if self.fold_copy:
                import copy
                self._plain = copy.deepcopy(self._plain)  # the pose model is only read, here and by the exports
            fold_for_inference(self._plain, runtime='torch')
            self.folded = True
            self._wrap()
            self._traced = {k: v for k, v in self._traced.items() if isinstance(v, int)}

    def _module(self, x):
        if not self.jit:
            return self.net
        key = tuple(x.shape)
        seen = self._traced.get(key, 0)
        if not isinstance(seen, int):
            return seen
        if seen + 1 < self.trace_after:
            self._traced[key] = seen + 1
            return self.net
        self.fold()  # the traced module is the folded net
        from ..onnx_export import EXPORT_LOCK
        with EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            traced = torch.jit.freeze(torch.jit.trace(self.net, x, check_trace=False).eval())
        self._traced[key] = traced
        return traced

    def __call__(self, batch):
        if not self.folded and self._eager_s >= self.fold_after_s:
            self.fold()  # at the start of the next call, not the end of the one that paid: its answer is not held up
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=self._format)
        net = self._module(x)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = net(x).float().contiguous().cpu().numpy()
        self.calls += 1
        self.last_rent_s = time.perf_counter() - t0 if self.calls > 1 else 0.
        if not self.folded:
            self._eager_s += self.last_rent_s
        return out
