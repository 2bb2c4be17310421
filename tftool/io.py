"""Where each stage reads and writes, and atomic writes so an interrupted run leaves no half file.

Layout (see DESIGN.md):
  WORKDIR/<stage>/model.h5       the stage's Keras model (HDF5: QAT wrappers do not survive .keras)
  WORKDIR/<stage>/config.json    data/model settings the stage was run with (resume guard)
  WORKDIR/<stage>/metrics.json   test accuracy and training figures
  WORKDIR/<stage>/flags.txt      resolved flags, usable as --flagfile
  WORKDIR/<stage>/backup/        BackupAndRestore state (resume after a kill)
  WORKDIR/<stage>/ckpt/          ModelCheckpoint weights of the last epoch
  WORKDIR/<stage>/logs/          TensorBoard
"""
import contextlib
import errno
import json
import os
import shutil
import tempfile

from tftool import UserError

STAGES = ("float", "qat", "pruned", "pqat", "teacher", "student", "student_baseline")
MODEL_FILE = "model.h5"


def stage_dir(workdir, stage):
    """Returns WORKDIR/<stage> (not created). Raises ValueError for an unknown stage."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; allowed: {', '.join(STAGES)}")
    return os.path.join(workdir, stage)


def model_path(workdir, stage):
    return os.path.join(stage_dir(workdir, stage), MODEL_FILE)


def has_model(workdir, stage):
    return os.path.isfile(model_path(workdir, stage))


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


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    # numpy scalars and arrays appear in metrics; JSON has no such types.
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def save_model(model, path):
    """Atomically saves a Keras model (plain, QAT-wrapped or stripped) as HDF5 at `path`."""
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # HDF5 on purpose: QAT-wrapped models do not load back from .keras (tfmot 0.8.1).
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy")
        model.save(tmp, save_format="h5", include_optimizer=False)


def load_model(path, compile=False):
    """Loads a model written by `save_model`, QAT layers included.

    Raises:
      UserError: when `path` does not exist.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    if not os.path.isfile(path):
        raise UserError(f"no model at {path}: run the stage that writes it first")
    with tfmot.quantization.keras.quantize_scope():
        return keras.models.load_model(path, compile=compile)


def check_config(directory, config, overwrite=False, write=True, free=()):
    """Guards a stage directory against mixing two different runs.

    Writes `config` (dict of flag name -> value) to DIR/config.json if there is none; if there
    is one that differs, raises UserError naming the first differing flag, unless `overwrite`.
    Args:
      write: False only checks (non-chief multi-worker workers do not write).
      free: keys that are recorded but may change between runs (e.g. skip_corrupt, which a
        user adds after a first run stopped at a corrupt image).
    """
    path = os.path.join(directory, "config.json")
    old = read_json(path)
    if old is not None and not overwrite:
        for key, value in config.items():
            if key in old and key not in free and old[key] != value:
                raise UserError(
                    f"{directory} was made with --{key}={_shown(old[key])}, not "
                    f"{_shown(value)}: use another --workdir, or pass --overwrite to start "
                    f"this stage again")
    if write:
        write_json(path, config)


@contextlib.contextmanager
def stage_lock(directory):
    """Holds an exclusive lock on DIR/.lock while a stage trains in DIR.

    A second run of the same stage (e.g. after `kill -9` hit `make` but not the training
    process it started) stops at once instead of writing the same backup/ concurrently. The
    kernel drops the lock when its holder dies, SIGKILL included, so a killed run never leaves
    a stale lock behind.
    Raises:
      UserError: another live process holds the lock (its pid is named).
    """
    import fcntl

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, ".lock")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise UserError(f"{directory} is being trained by another process (pid {holder}); "
                            f"wait for it to finish or stop it, then run again") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _shown(value):
    return "(default)" if value is None else value


def clear_training_state(directory):
    """Removes resume state (backup/, ckpt/) so a forced re-run starts from epoch 0."""
    for sub in ("backup", "ckpt"):
        shutil.rmtree(os.path.join(directory, sub), ignore_errors=True)
