"""The Keras callbacks every training stage fits with (train/fit.py `train`).

BackupAndRestore (a re-run after a kill resumes at the last finished epoch),
LastFiniteWeights (ckpt/: the weights of the last finite epoch, written when fit ends),
TensorBoard, NaNGuard (stops at the first non-finite loss, before that epoch's weights can
overwrite the last good backup) and ImagesPerSecond (throughput in images/s, into the logs
and TensorBoard); EpochLine prints one line per epoch where no progress bar is shown.

Under MultiWorkerMirroredStrategy the Keras callbacks write on the chief only (the others
write to a temporary `workertemp_<id>` folder that Keras deletes) and every worker restores
from the same backup/, as in https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras.
"""
import math
import os
import time

from absl import logging
import tf_keras as keras


# Multiply-accumulates of one training step per image: the forward pass plus the backward
# pass's two (gradients of the activations and of the weights), the usual 3x convention
# (Kaplan et al. 2020, "Scaling Laws", §2.1).
TRAIN_MACS_FACTOR = 3


class ImagesPerSecond(keras.callbacks.Callback):
    """Logs training throughput each epoch: `images_per_second` (global batch × steps / wall
    seconds) and `gmacs_per_second` (images/s × TRAIN_MACS_FACTOR × the model's forward
    multiply-accumulates per image (models.macs) / 1e9: how close the run is to the
    machine's arithmetic limit; left out where the model's MACs are unknown).

    Adds them to the epoch logs, so History, TensorBoard (when this callback comes before it)
    and metrics.json carry them.
    """

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size
        self._start = None
        self._steps = 0
        self._macs = None

    def on_train_begin(self, logs=None):
        from tftool import models

        try:
            self._macs = models.macs(self.model)
        except (ValueError, AttributeError):  # unknown spatial sizes, unbuilt layers
            self._macs = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the index of the last step run: with steps_per_execution = k this hook
        # runs once per k steps, so counting calls would undercount k-fold.
        self._steps = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        ips = self._steps * self.global_batch_size / max(seconds, 1e-9)
        if logs is not None:
            logs["images_per_second"] = ips
            if self._macs:
                logs["gmacs_per_second"] = ips * TRAIN_MACS_FACTOR * self._macs / 1e9
        logging.vlog(1, "epoch %d: %.0f images/s (%d steps of %d in %.1f s)", epoch + 1, ips,
                     self._steps, self.global_batch_size, seconds)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch when stdout is not a terminal (a log file, make's output in CI):
    `float: epoch 7/30, loss 0.2015, accuracy 0.9318, 10,200 images/s, 9 GMAC/s, 0.1 s`, where
    Keras's progress bar would write a bar per epoch on a terminal. Sub-second epochs are thinned to
    one line per `min_seconds` (the first and the last epoch always print), so a digits run
    of 30 epochs logs about 3 lines and a 10-minute epoch every epoch.
    """

    def __init__(self, label, min_seconds=10.0):
        super().__init__()
        self.label = label
        self.min_seconds = min_seconds
        self._last = None
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        total = self.params.get("epochs")
        edge = self._last is None or epoch + 1 == total
        if not edge and now - self._last < self.min_seconds:
            return
        self._last = now
        logs = logs or {}
        figures = [f"{key} {logs[key]:.4f}" for key in ("loss", "accuracy") if key in logs]
        if "images_per_second" in logs:
            figures.append(f"{logs['images_per_second']:,.0f} images/s")
        if "gmacs_per_second" in logs:
            figures.append(f"{logs['gmacs_per_second']:,.0f} GMAC/s")
        figures.append(f"{now - self._start:.1f} s")
        print(f"{self.label}: epoch {epoch + 1}/{total}, {', '.join(figures)}", flush=True)


def fit_verbosity():
    """Keras fit's `verbose`: 1 (a progress bar) on a terminal, else 0 (EpochLine prints)."""
    import sys

    try:
        return 1 if sys.stdout.isatty() else 0
    except (AttributeError, ValueError):
        return 0


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers where.

    Unlike keras.callbacks.TerminateOnNaN, it also tells the backup and checkpoint callbacks
    made by standard_callbacks to skip the end of that epoch, so the weights of the last
    finite epoch stay on disk instead of being overwritten with NaNs.
    Attributes:
      epoch, batch: 0-based epoch (counted from the start of training, resumed epochs
        included) and batch of the first non-finite loss; None while all is finite.
    """

    def __init__(self):
        super().__init__()
        self.epoch = self.batch = None
        self._current_epoch = 0

    @property
    def tripped(self):
        return self.epoch is not None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.tripped:
            return
        if not math.isfinite(float(loss)):
            self.epoch, self.batch = self._current_epoch, batch
            logging.warning("loss is %s at epoch %d, batch %d: stopping", loss,
                            self.epoch + 1, batch + 1)
            self.model.stop_training = True


def _skip_epoch_end_after_nan(callback_class):
    """A subclass of `callback_class` whose on_epoch_end does nothing once `guard` tripped."""

    class Guarded(callback_class):
        def __init__(self, *args, guard, **kwargs):
            super().__init__(*args, **kwargs)
            self._guard = guard

        def on_epoch_end(self, epoch, logs=None):
            if not self._guard.tripped:
                super().on_epoch_end(epoch, logs)

    Guarded.__name__ = callback_class.__name__
    return Guarded


_BackupAndRestore = _skip_epoch_end_after_nan(keras.callbacks.BackupAndRestore)


class LastFiniteWeights(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint of the weights of the last epoch whose loss stayed finite, written
    once when fit ends (finished, or stopped by `guard`) instead of after every epoch.

    Each epoch end keeps a copy of the weights in memory (model.get_weights(): ~10 ms for
    MobileNetV2 α 0.35) unless `guard` tripped in that epoch; saving the .h5 every epoch took
    ~0.3 s there (2-3% of a 96 px epoch on 2 cores). After a stop on NaN the model gets the
    kept weights back before they are saved. A killed run leaves no new file here: it resumes
    from BackupAndRestore's backup/, which is written every epoch. Writing (chief only under
    MultiWorkerMirroredStrategy) is ModelCheckpoint's own epoch-end save.
    """

    def __init__(self, filepath, guard):
        super().__init__(filepath, save_weights_only=True)
        self._guard = guard
        self._kept = None  # (epoch, logs, weights) of the last finite epoch

    def on_epoch_end(self, epoch, logs=None):
        if not self._guard.tripped:
            self._kept = (epoch, dict(logs or {}), self.model.get_weights())

    def on_train_end(self, logs=None):
        if self._kept is None:
            return
        epoch, epoch_logs, weights = self._kept
        if self._guard.tripped:
            self.model.set_weights(weights)
        super().on_epoch_end(epoch, epoch_logs)


def standard_callbacks(stage_dir, global_batch_size, guard=None, backup_dir=None):
    """The callbacks of every stage, writing under `stage_dir` (backup/, ckpt/, logs/).

    Args:
      guard: the NaNGuard to use (a new one if None); it comes first so that a non-finite
        epoch is neither backed up nor checkpointed.
      backup_dir: BackupAndRestore's folder (default STAGE_DIR/backup).
    """
    guard = guard or NaNGuard()
    return [
        guard,
        _BackupAndRestore(backup_dir or os.path.join(stage_dir, "backup"),
                          delete_checkpoint=False, guard=guard),
        ImagesPerSecond(global_batch_size),
        LastFiniteWeights(os.path.join(stage_dir, "ckpt", "last.weights.h5"), guard),
        keras.callbacks.TensorBoard(os.path.join(stage_dir, "logs"), update_freq="epoch"),
    ]
