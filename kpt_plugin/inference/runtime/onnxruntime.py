"""The ONNX Runtime adapter (CPU; CUDA when the device is a GPU and onnxruntime-gpu is installed)."""
from ...errors import BackendError
from .graph import GraphBackend

__all__ = ['OrtBackend', 'cpu_session_options']

def cpu_session_options(ort, threads):
    """Session options for a CPU session with ``threads`` intra-op threads that do not spin when idle.

    Each ORT session has its own thread pool, and by default idle pool threads spin: with two sessions in turn (the
    detector and the keypoint model of a pipeline, two batch sizes, the candidates of a tuning) each pool spins
    while the other works, on the same cores, and it takes cores from the next process too. Measured on 2 cores,
    detector 320 + keypoint 128x96 in turn: 32.4 + 13.6 ms spinning, 11.1 + 5.6 ms without. (ORT's global thread
    pool, 10.5 + 4.2 ms there, is not used: once it exists every session of the process must use it, and sessions
    made by other code, e.g. ``onnxruntime.quantization``'s calibration, then fail.)
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return so


class OrtBackend(GraphBackend):
    """ONNX Runtime on our exported graph (CPU; CUDA when ``device`` is a GPU and the provider exists)."""

    name = runtime = 'onnxruntime'

    def __init__(self, onnx_path=None, device='cpu', threads=None, pose_model=None, checkpoint=None,
                 input_size=None, flip=False):
        import importlib.util
        if importlib.util.find_spec('onnxruntime') is None:  # imported on the first load (~0.1 s), not here
            raise BackendError('the onnxruntime backend needs onnxruntime: pip install onnxruntime')
        self.providers = ['CPUExecutionProvider']
        if device.startswith('cuda'):
            if 'CUDAExecutionProvider' not in self._ort.get_available_providers():
                raise BackendError(f'{device} requested with the onnxruntime backend but this onnxruntime has no '
                                   'CUDAExecutionProvider; install onnxruntime-gpu or use --backend torch')
            idx = int(device.split(':')[1]) if ':' in device else 0
            self.providers = [('CUDAExecutionProvider', dict(device_id=idx)), 'CPUExecutionProvider']
            self.device = f'cuda:{idx}'
        elif device != 'cpu':
            raise BackendError(f'the onnxruntime backend runs on cpu or cuda, not {device}')
        super().__init__(onnx_path, threads, pose_model, checkpoint, input_size, flip)

    @property
    def _ort(self):
        import onnxruntime
        return onnxruntime

    def _load(self, path):
        ort = self._ort
        if self.device == 'cpu':
            so = cpu_session_options(ort, self.threads)
        else:
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.intra_op_num_threads, so.inter_op_num_threads = self.threads, 1
        return ort.InferenceSession(path, so, providers=self.providers)

    @staticmethod
    def _inputs(sess):
        return [i.name for i in sess.get_inputs()], sess.get_inputs()[0].shape[0]

    @staticmethod
    def _run(sess, x):
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
