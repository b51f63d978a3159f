"""Inference API (PaddleX-compatible): ``create_model(name).predict(input)`` -> :class:`KptResult` s."""
from .device import DeviceError, default_device, parse_device
from .inputs import InputError
from .models import WeightsError
from .predictor import BACKENDS, KeypointPredictor, create_model
from .result import KptResult

__all__ = ['create_model', 'KeypointPredictor', 'KptResult', 'InputError', 'DeviceError', 'WeightsError',
           'parse_device', 'default_device', 'BACKENDS']
