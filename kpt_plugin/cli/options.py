"""Options that several commands share: ``--backend`` and ``--precision`` / ``--calib``."""

BACKENDS = ('torch', 'onnxruntime', 'openvino', 'hpip')


def add_precision_args(p):
    """``--precision`` and ``--calib`` (int8 calibration images)."""
    p.add_argument('--precision', choices=['fp32', 'bf16', 'int8'], default='fp32',
                   help='fp32 (default), int8 (calibrated static quantization, see docs/precision.md; the '
                   'backend defaults to the measured-fastest of onnxruntime/openvino) or bf16 (openvino, CPUs '
                   'with AVX512-BF16/AMX)')
    p.add_argument('--calib', default=None, metavar='DIR',
                   help='int8: calibration images (a folder; default: the small documented set under ../shared/data)')


def backend_of(args):
    """The ``backend=`` of ``--backend`` / ``--precision``: reduced precision does not run on torch, so the default
    backend becomes the measured choice (as ``hpip``)."""
    auto = args.backend == 'hpip' or (args.precision != 'fp32' and args.backend == 'torch')
    return 'auto' if auto else args.backend
