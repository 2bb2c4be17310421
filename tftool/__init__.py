"""tftool: train a Keras CNN, compress it (QAT, pruning, distillation) and ship it as TFLite.

Importing this package selects Keras 2 (``tf_keras``) for TensorFlow, because
tensorflow-model-optimization does not work with Keras 3. The variable must be set before
TensorFlow itself is imported; Python runs this file before any module of the package
(`import tftool.x` imports `tftool` first), so no module needs to import it for that.

The Python API is `tftool.api` (api.train, api.quantize, api.export, api.benchmark, ...): the
commands as functions, loaded on first use so that `import tftool` stays light.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO lines drown the one-line errors and tables this tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


class UserError(Exception):
    """A mistake in the user's input: entry points print its message as one line and exit 2."""


def first_line(error, limit=None):
    """The first non-blank line of an exception's message (its `.message` where it has one,
    as TensorFlow's errors do), cut to `limit` characters; the exception's class name when
    the message is empty. What a UserError quotes of a library's error."""
    lines = (getattr(error, "message", None) or str(error)).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if limit is None else text[:limit]


def __getattr__(name):
    """`tftool.api` without importing it first (`import tftool; help(tftool.api.export)`)."""
    if name == "api":
        import importlib

        return importlib.import_module("tftool.api")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
