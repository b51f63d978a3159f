"""ONNX export of PP-TinyPose (BN folded; optional fused flip test and in-graph ppdet DARK decode).

Exported with torch's TorchScript-based exporter at opset 17: ``torch.onnx.export(dynamo=True,
opset_version=17)`` writes an invalid model (a ``Split`` keeps opset 18's ``num_outputs``) and needs
onnxscript.
"""
import os
import os.path as osp
import threading
import warnings

import torch
from torch import nn

from weight_convert.io import atomic_output, sha256sum

from .folding import fold_for_inference
from .nets import FlipFusedNet, HeatmapNet

__all__ = ['DarkDecode', 'export_onnx', 'cached_onnx', 'cached_onnx_path', 'OPSET', 'EXPORT_LOCK']

OPSET = 17
#: held by every torch trace / export in kpt_plugin: torch's tracer and ONNX exporter keep process-global state, so
#: two at once (a background export or tuning and a trace in the caller's thread, the keypoint model's and the
#: detector's tunings) fail with "GLOBALS.in_onnx_export must be False" or "Graphs differed across invocations"
EXPORT_LOCK = threading.RLock()
#: bumped whenever the exported graph changes, so cached exports (see :func:`cached_onnx`) are rebuilt
GRAPH_VERSION = 3


class DarkDecode(nn.Module):
    """ppdet ``HRNetPostProcess(use_dark=True)`` + back-projection, in tensor ops (float32).

    Inputs: heatmaps (N, K, h, w), center (N, 2) image pixels, scale (N, 2) in units of 200 px.
    Output: (N, K, 3) ``[x, y, score]`` in image pixels (score = the raw heatmap maximum).

    Same rules as :func:`kpt_plugin.codecs.pp_decode.ppdet_decode`: argmax; a non-positive maximum gives
    heatmap coordinate (0, 0); 3x3 Gaussian blur (sigma 0.8, zero padding) rescaled to keep each map's maximum;
    log; a Newton step only where 1 < x < w-2, 1 < y < h-2 and the Hessian is non-singular; then the non-UDP
    inverse of (center, scale*200) -> heatmap. ppdet mixes float64 into parts of this; in float32 the result
    differs by < 1e-3 px on real maps.
    """

    def __init__(self):
        super().__init__()
        # OpenCV's 3x3 Gaussian for sigma 0 (= 0.8): taps 0.25, 0.5, 0.25
        g = torch.tensor([0.25, 0.5, 0.25])
        self.register_buffer('kernel', (g[:, None] * g[None, :])[None, None], persistent=False)

    def forward(self, heatmaps, center, scale):
        n, k, h, w = heatmaps.shape
        flat = heatmaps.reshape(n, k, h * w)
        maxvals, idx = flat.max(dim=2)
        x = (idx % w).float()
        y = torch.div(idx, w, rounding_mode='floor').float()
        positive = (maxvals > 0).float()
        x, y = x * positive, y * positive

        blurred = nn.functional.conv2d(heatmaps.reshape(n * k, 1, h, w), self.kernel, padding=1).reshape(n, k, h, w)
        bmax = blurred.reshape(n, k, h * w).max(dim=2).values
        blurred = blurred * (maxvals / bmax)[..., None, None]
        logs = torch.log(torch.clamp(blurred, min=1e-10)).reshape(n, k, h * w)

        xi, yi = x.long(), y.long()
        inside = (xi > 1) & (xi < w - 2) & (yi > 1) & (yi < h - 2)
        xc, yc = xi.clamp(2, w - 3), yi.clamp(2, h - 3)

        def at(dx, dy):
            return torch.gather(logs, 2, ((yc + dy) * w + (xc + dx))[..., None]).reshape(n, k)

        c = at(0, 0)
        dx = 0.5 * (at(1, 0) - at(-1, 0))
        dy = 0.5 * (at(0, 1) - at(0, -1))
        dxx = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
        dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
        dyy = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
        det = dxx * dyy - dxy * dxy
        ok = inside & (det != 0)
        safe = torch.where(ok, det, torch.ones_like(det))
        off_x = -(dyy * dx - dxy * dy) / safe
        off_y = -(-dxy * dx + dxx * dy) / safe
        zero = torch.zeros_like(off_x)
        x = x + torch.where(ok, off_x, zero)
        y = y + torch.where(ok, off_y, zero)

        # non-UDP inverse affine: a similarity fixed by the box width (ppdet get_affine_transform(inv=1))
        ratio = (scale[:, 0:1] * 200.0) / w
        img_x = center[:, 0:1] + (x - w * 0.5) * ratio
        img_y = center[:, 1:2] + (y - h * 0.5) * ratio
        return torch.stack([img_x, img_y, maxvals], dim=2)


class _WithDecode(nn.Module):

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.decode = DarkDecode()

    def forward(self, image, center, scale):
        hm = self.net(image)
        return hm, self.decode(hm, center, scale)


def build_export_net(pose_model, flip=False, with_decode=False, fold_shuffles=True, runtime='onnxruntime'):
    """The module that gets exported: BN-folded heatmap net with the channel shuffles folded into convs
    (:func:`~kpt_plugin.inference.folding.fold_channel_shuffles`; fewer nodes, more FLOPs, faster on CPU) and the
    fuse-layer sums regrouped (:func:`~kpt_plugin.inference.folding.fold_fuse_layers`; lets ONNX Runtime fuse the adds
    into the convs) and the stem's split/shuffle removed (:func:`~kpt_plugin.inference.folding.fold_stem`), optionally
    flip-fused and with decode. ``runtime`` picks the fold plan (:data:`~kpt_plugin.inference.folding.FOLD_PLANS`)."""
    import copy
    net = HeatmapNet(copy.deepcopy(pose_model).cpu()).eval()
    fold_for_inference(net, shuffles=fold_shuffles, runtime=runtime)
    if flip:
        net = FlipFusedNet(net).eval()
    return _WithDecode(net).eval() if with_decode else net


def export_onnx(pose_model, out, input_size, flip=False, dynamic_batch=True, with_decode=False, opset=OPSET,
                batch_size=1, fold_shuffles=True, runtime='onnxruntime'):
    """Export to ``out`` (written atomically) and check it with ``onnx.checker``.

    Inputs: ``image`` (N, 3, H, W) float32 RGB normalised with ImageNet mean/std (ppdet's preprocessing);
    with ``with_decode`` also ``center`` (N, 2) and ``scale`` (N, 2, units of 200 px). Outputs: ``heatmaps``
    (N, 17, H/4, W/4) (flip-averaged when ``flip``), and with ``with_decode`` ``keypoints`` (N, 17, 3).
    A fixed batch (``dynamic_batch=False``) lets ONNX Runtime fold all shape arithmetic: much faster on CPU.
    ``runtime`` (``'onnxruntime'`` or ``'openvino'``) picks the fold plan that runs fastest there.

    Returns:
        str: ``out``.
    """
    import onnx
    net = build_export_net(pose_model, flip=flip, with_decode=with_decode, fold_shuffles=fold_shuffles,
                           runtime=runtime)
    w, h = input_size
    n = 2 if dynamic_batch else int(batch_size)
    image = torch.zeros(n, 3, h, w)
    args = (image, ) if not with_decode else (image, torch.full((n, 2), 100.), torch.ones(n, 2))
    input_names = ['image'] + (['center', 'scale'] if with_decode else [])
    output_names = ['heatmaps'] + (['keypoints'] if with_decode else [])
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'} for name in input_names + output_names}
    out = osp.abspath(os.fspath(out))
    with atomic_output(out) as tmp:
        with EXPORT_LOCK, warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(net, args, tmp, input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        onnx.checker.check_model(onnx.load(tmp))
    return out


def cached_onnx_path(checkpoint, input_size, flip=False, batch_size=None, runtime='onnxruntime'):
    """Where :func:`cached_onnx` keeps the export of these arguments (whether or not it exists yet)."""
    from ..zoo.hub import cache_dir
    batch = 'bdyn' if batch_size is None else f'b{int(batch_size)}'
    key = (f'{_checkpoint_digest(checkpoint)[:16]}-{input_size[1]}x{input_size[0]}-{"flip" if flip else "noflip"}'
           f'-{batch}-op{OPSET}-g{GRAPH_VERSION}' + ('' if runtime == 'onnxruntime' else f'-{runtime}'))
    return osp.join(cache_dir(), 'onnx', f'pp_tinypose-{key}.onnx')


_digests = {}  # (path, size, mtime) -> sha256: a graph backend asks once per batch bucket


def _checkpoint_digest(checkpoint):
    st = os.stat(checkpoint)
    key = (osp.abspath(os.fspath(checkpoint)), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256sum(checkpoint)
    return _digests[key]


def cached_onnx(pose_model, checkpoint, input_size, flip=False, batch_size=None, runtime='onnxruntime'):
    """Export once per (checkpoint content, input size, flip, batch size, runtime) into ``zoo.cache_dir()/onnx``.

    Args:
        batch_size (int, optional): fixed batch size (fast); None = dynamic batch.
        runtime (str): ``'onnxruntime'`` or ``'openvino'`` (see :func:`export_onnx`).

    Returns:
        str: the ONNX path.
    """
    from ..zoo.hub import cached_file
    path = cached_onnx_path(checkpoint, input_size, flip=flip, batch_size=batch_size, runtime=runtime)
    return cached_file(path, lambda out: export_onnx(pose_model, out, input_size, flip=flip,
                                                     dynamic_batch=batch_size is None, batch_size=batch_size or 1,
                                                     runtime=runtime), 'ONNX export')
