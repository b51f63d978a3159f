"""The one user-error base of the project (kpt_plugin re-exports it from :mod:`kpt_plugin.errors`).

A :class:`KptError` carries one message that names the input and says what to do; the CLIs catch only this
class (``--debug`` re-raises), so anything else is a bug and keeps its traceback.
"""


class KptError(Exception):
    """A bad input or environment the user can fix; the message names the input and the fix."""


class WeightsError(KptError, ValueError):
    """Weights that cannot be read, or that do not fit the model they are given to."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """A weight file or directory that does not exist (also a ``FileNotFoundError``, as before)."""
