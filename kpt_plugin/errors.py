"""kpt_plugin's user errors: one base, :class:`KptError` (defined in the bottom layer, ``weight_convert.errors``,
so the converter raises the same class). The CLI catches only ``KptError``; ``--debug`` re-raises it.

Each subclass is also the builtin it refines (``ValueError`` / ``RuntimeError``), so ``except ValueError`` code
written against earlier releases keeps working.
"""
from weight_convert.errors import KptError, WeightsError

__all__ = ['KptError', 'WeightsError', 'InputError', 'DeviceError', 'ZooError', 'DatasetError', 'BackendError',
           'OptionError']


class InputError(KptError, ValueError):
    """An input (image, path, URL, boxes) that cannot be used; other inputs of the batch go on."""


class DeviceError(KptError, ValueError):
    """A device string that is malformed, or names a device that is not installed / not visible."""


class ZooError(KptError, ValueError):
    """Unknown model name, unreachable server, or a download that fails verification."""


class DatasetError(KptError, ValueError):
    """An annotation file or image folder that does not form a usable COCO keypoint dataset."""


class BackendError(KptError, RuntimeError):
    """A runtime (torch, ONNX Runtime, OpenVINO) that is missing, or cannot run the model on this device."""


class OptionError(KptError, ValueError):
    """An option or argument value that is not accepted (names the option and the values it takes)."""
