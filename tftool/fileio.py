"""Files: atomic writes, JSON, HDF5 models, and every file error turned into one UserError.

Every write goes to a hidden temporary name in the same folder and is renamed into place, so
a reader (or a run after a kill) sees the old complete file or the new complete file, never a
half one. Every read of a file tftool wrote (JSON, model.h5) that finds it damaged from
outside raises UserError naming the file and the fix, instead of a parser traceback.
Stage folders themselves (locks, config guard, resume state) are stage_runner.py's.
"""
import contextlib
import errno
import json
import os
import tempfile

from tftool import UserError

@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    The temporary file lives in the same directory, so the final `os.replace` is atomic on
    POSIX: readers see either the old complete file or the new complete file, never a
    truncated one. On any exception the temporary file is removed and `path` is untouched.
    A SIGKILL can leave a hidden `.<stem>.*.tmp<ext>` beside `path`, never a half `path`.

    Raises:
      UserError: the disk (or quota) is full; the previous `path`, if any, is kept.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # data on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a deployable file is not secret
        os.replace(tmp, path)
    except OSError as e:
        # h5py reports ENOSPC without errno, as text; match both.
        if e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e):
            kept = "the previous file is kept" if os.path.exists(path) else "nothing was written"
            raise UserError(f"no space left on the device writing {path} ({kept}); free some "
                            f"space and run again") from e
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path, data):
    """Atomically writes `data` (bytes) to `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def same_bytes(path, content):
    """Whether the file at `path` already holds exactly `content` (bytes); False when it is
    absent or unreadable. A re-export writes a file only when this is False, so a file whose
    bytes did not change is not rewritten and keeps its mtime."""
    try:
        with open(path, "rb") as f:
            return f.read() == content
    except OSError:
        return False


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    # numpy scalars and arrays appear in metrics; JSON has no such types.
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path, default=None, fix=None):
    """The JSON value in `path`, or `default` when there is no such file.

    Raises:
      UserError: the file is not valid UTF-8 JSON (damaged from outside, e.g. truncated or
        edited), or `path` is a folder; the message names the file and `fix` (default: delete
        it and run the step that writes it again).
    """
    if not os.path.lexists(path):
        return default
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{path} is damaged (not valid JSON: {str(e).splitlines()[0]}); "
                        f"{fix or 'delete it and run the step that writes it again'}") from e


def read_json_object(path, fix=None):
    """read_json for files that must hold a JSON object ({...}); None when absent.

    Raises: UserError as read_json, and when the file holds another JSON value.
    """
    value = read_json(path, fix=fix)
    if value is not None and not isinstance(value, dict):
        raise UserError(f"{path} is damaged (a JSON {type(value).__name__}, not an object); "
                        f"{fix or 'delete it and run the step that writes it again'}")
    return value


def sha256(path):
    """sha256 hex digest of a file, read in 1 MiB blocks, or of every file under a folder
    (a SavedModel), in sorted path order."""
    import hashlib

    digest = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
    for name in files:
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def save_model(model, path):
    """Atomically saves a Keras model (plain, QAT-wrapped or stripped) as HDF5 at `path`."""
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # HDF5 on purpose: QAT-wrapped models do not load back from .keras (tfmot 0.8.1).
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy")
        model.save(tmp, save_format="h5", include_optimizer=False)


def load_model(path, compile=False, fix=None):
    """Loads a model written by `save_model`, QAT layers included.

    Args:
      fix: what the user should do when the file is damaged (default: run the stage again).
    Raises:
      UserError: `path` does not exist, or is not a Keras HDF5 model (truncated, foreign or
        damaged): the message names the file and `fix`.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    if not os.path.isfile(path):
        raise UserError(f"no model at {path}: run the stage that writes it first")
    from tftool import graphless  # noqa: F401  (registers an imported subclassed model's layer)

    try:
        with tfmot.quantization.keras.quantize_scope():
            return keras.models.load_model(path, compile=compile)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        # h5py raises OSError ("file signature not found", "truncated file"); Keras raises
        # ValueError/KeyError/TypeError for an HDF5 file that holds no (or a foreign) model.
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{path} is not a readable Keras model ({first}); "
                        f"{fix or 'run the stage that writes it again with --overwrite'}") from e
