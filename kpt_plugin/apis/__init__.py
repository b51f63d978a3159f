"""Inference API (PaddleX-compatible), kept under its earlier import path: the code lives in
:mod:`kpt_plugin.inference`."""
from ..errors import DeviceError, InputError, WeightsError
from ..inference.device import default_device, parse_device
from ..inference.predictor import BACKENDS, KeypointPredictor, create_model
from ..inference.result import KptResult

__all__ = ['create_model', 'KeypointPredictor', 'KptResult', 'InputError', 'DeviceError', 'WeightsError',
           'parse_device', 'default_device', 'BACKENDS']
