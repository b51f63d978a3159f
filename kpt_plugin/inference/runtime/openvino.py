"""The OpenVINO adapter (CPU), on our exported graph with OpenVINO's own fold plan, or an OpenVINO IR file."""
import os

from ...errors import BackendError
from .graph import GraphBackend

__all__ = ['OpenVinoBackend']


class OpenVinoBackend(GraphBackend):
    """OpenVINO (CPU) on our exported graph, with the fold plan tuned for it (``FOLD_PLANS['openvino']``).

    Compiled with the f32 precision hint: OpenVINO's default on CPUs with AVX512-BF16/AMX runs bf16, which moves
    heatmaps by up to 8e-2 (not the fp32 model). ``onnx_path`` may also be an OpenVINO IR ``.xml``.
    """

    name = runtime = 'openvino'

    def __init__(self, onnx_path=None, device='cpu', threads=None, pose_model=None, checkpoint=None,
                 input_size=None, flip=False):
        import importlib.util
        if importlib.util.find_spec('openvino') is None:  # imported on the first load (~0.2 s), not here
            raise BackendError('the openvino backend needs openvino: pip install openvino')
        if device != 'cpu':
            raise BackendError(f'the openvino backend runs on cpu, not {device}; use --backend onnxruntime '
                               '(cuda) or torch')
        super().__init__(onnx_path, threads, pose_model, checkpoint, input_size, flip)

    @property
    def _core(self):
        from ..._compat import openvino_core
        return openvino_core()  # one per process: see kpt_plugin._compat (fix 5)

    @staticmethod
    def _check_file(path):
        # OpenVINO would try every frontend on a bad file (TensorFlow's logs parse errors to stderr)
        if not path.lower().endswith(('.onnx', '.xml')):
            raise ValueError('expected an .onnx file or an OpenVINO IR .xml')
        if path.lower().endswith('.onnx'):
            import onnx
            onnx.load(path, load_external_data=False)
        else:
            with open(path, 'rb') as f:
                if b'<net' not in f.read(4096):
                    raise ValueError('not an OpenVINO IR: no <net> element')

    def _load(self, path):
        config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
                  'INFERENCE_NUM_THREADS': self.threads}
        if not self.user_file:
            # OpenVINO's own model cache: compiling a graph takes ~1.5 s, importing its cached blob ~0.3 s (its
            # key covers the model, the options and the OpenVINO version, so a stale blob is never used)
            from ...zoo.hub import cache_dir
            config['CACHE_DIR'] = os.path.join(cache_dir(), 'openvino')
            return self._core.compile_model(path, 'CPU', config).create_infer_request()
        compiled = self._core.compile_model(self._core.read_model(path), 'CPU', config)
        return compiled.create_infer_request()

    @staticmethod
    def _inputs(req):
        inputs = req.model_inputs
        dim = inputs[0].get_partial_shape()[0]
        return [i.any_name for i in inputs], dim.get_length() if dim.is_static else None

    @staticmethod
    def _run(req, x):
        req.infer({0: x})
        return req.get_output_tensor(0).data.copy()
