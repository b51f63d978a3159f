"""The ONNX Runtime adapter's CPU sessions (kpt_plugin.inference.runtime.onnxruntime)."""
import numpy as np
import onnxruntime as ort
import torch

from kpt_plugin.inference.runtime.onnxruntime import OrtBackend, cpu_session_options


def test_cpu_sessions_do_not_spin(tmp_path):
    """Idle pool threads must not spin: two sessions in turn (detector + keypoint model) would take each other's
    cores. Both our own backend's sessions and the helper's options say so."""
    so = cpu_session_options(ort, 2)
    assert so.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    path = str(tmp_path / 'tiny.onnx')
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 8, 8), path, input_names=['image'], dynamo=False)
    backend = OrtBackend(path, 'cpu', threads=1)
    sess = backend.sessions[backend.fixed]
    assert sess.get_session_options().get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert backend(np.zeros((1, 3, 8, 8), np.float32)).shape == (1, 4, 6, 6)
