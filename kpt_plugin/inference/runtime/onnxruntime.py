"""The ONNX Runtime adapter (CPU; CUDA when the device is a GPU and onnxruntime-gpu is installed)."""
from ...errors import BackendError
from .graph import GraphBackend

__all__ = ['OrtBackend']


class OrtBackend(GraphBackend):
    """ONNX Runtime on our exported graph (CPU; CUDA when ``device`` is a GPU and the provider exists)."""

    name = runtime = 'onnxruntime'

    def __init__(self, onnx_path=None, device='cpu', threads=None, pose_model=None, checkpoint=None,
                 input_size=None, flip=False):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError('the onnxruntime backend needs onnxruntime: pip install onnxruntime') from None
        self._ort = ort
        self.providers = ['CPUExecutionProvider']
        if device.startswith('cuda'):
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise BackendError(f'{device} requested with the onnxruntime backend but this onnxruntime has no '
                                   'CUDAExecutionProvider; install onnxruntime-gpu or use --backend torch')
            idx = int(device.split(':')[1]) if ':' in device else 0
            self.providers = [('CUDAExecutionProvider', dict(device_id=idx)), 'CPUExecutionProvider']
            self.device = f'cuda:{idx}'
        elif device != 'cpu':
            raise BackendError(f'the onnxruntime backend runs on cpu or cuda, not {device}')
        super().__init__(onnx_path, threads, pose_model, checkpoint, input_size, flip)

    def _load(self, path):
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        return ort.InferenceSession(path, so, providers=self.providers)

    @staticmethod
    def _inputs(sess):
        return [i.name for i in sess.get_inputs()], sess.get_inputs()[0].shape[0]

    @staticmethod
    def _run(sess, x):
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
