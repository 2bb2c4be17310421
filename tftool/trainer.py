"""Keras `fit` under a distribution strategy, with the callbacks every training stage uses.

Callbacks: BackupAndRestore (a re-run after a kill resumes at the last finished epoch),
ModelCheckpoint (weights of the last epoch), TensorBoard, TerminateOnNaN and
ImagesPerSecond (throughput in images/s, into the logs and TensorBoard).
"""
import dataclasses
import os
import time

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, data as data_lib, schedules

from absl import logging
import tensorflow as tf
import tf_keras as keras

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass
class TrainConfig:
    """Hyperparameters of one training stage (the flags of train/quantize/prune/distill)."""
    epochs: int
    per_replica_batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_epochs: float = 0.0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    augment: bool = True
    hflip: bool = False
    seed: int = 0


class ImagesPerSecond(keras.callbacks.Callback):
    """Logs training throughput (images/second, global batch × steps / wall seconds) each epoch.

    Adds `images_per_second` to the epoch logs, so History, TensorBoard (when this callback
    comes before it) and metrics.json carry it.
    """

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size
        self._start = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        ips = self._steps * self.global_batch_size / max(seconds, 1e-9)
        if logs is not None:
            logs["images_per_second"] = ips
        logging.info("epoch %d: %.0f images/s (%d steps of %d in %.1f s)", epoch + 1, ips,
                     self._steps, self.global_batch_size, seconds)


def make_optimizer(name, learning_rate, weight_decay=0.0):
    """Adam or SGD (momentum 0.9, Nesterov) with decoupled weight decay (Loshchilov & Hutter 2019).

    Args:
      learning_rate: float or LearningRateSchedule.
    Raises:
      ValueError: unknown name.
    """
    wd = weight_decay or None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=wd)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def standard_callbacks(stage_dir, global_batch_size):
    """The callbacks of every stage, writing under `stage_dir` (backup/, ckpt/, logs/)."""
    return [
        keras.callbacks.BackupAndRestore(os.path.join(stage_dir, "backup"),
                                         delete_checkpoint=False),
        keras.callbacks.TerminateOnNaN(),
        ImagesPerSecond(global_batch_size),
        keras.callbacks.ModelCheckpoint(os.path.join(stage_dir, "ckpt", "last.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(os.path.join(stage_dir, "logs"), update_freq="epoch"),
    ]


def default_compile(model, optimizer):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def train(strategy, model_fn, dataset, image_size, config, stage_dir, extra_callbacks=(),
          compile_fn=default_compile):
    """Builds, compiles and fits a model under `strategy`; returns (model, history dict).

    Args:
      strategy: a tf.distribute.Strategy; model_fn, the optimizer and compile run in its scope.
      model_fn: () -> tf_keras model (float32 [N, H, W, C] -> [N, K] logits).
      dataset: a data.Dataset.
      image_size: (height, width).
      config: TrainConfig.
      stage_dir: where backup/, ckpt/ and logs/ go.
      extra_callbacks: stage-specific Keras callbacks (e.g. pruning's UpdatePruningStep).
      compile_fn: (model, optimizer) -> None.
    Raises:
      UserError: the global batch is larger than the train split; the loss became NaN.
    """
    keras.utils.set_random_seed(config.seed)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.per_replica_batch_size * replicas
    steps_per_epoch = dataset.num_train // global_batch
    if steps_per_epoch < 1:
        raise UserError(f"--per_replica_batch_size={config.per_replica_batch_size} × {replicas} "
                        f"replicas exceeds the {dataset.num_train} training images; lower it")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    train_ds = data_lib.pipeline(dataset.train, image_size, global_batch, training=True,
                                 augment=config.augment, hflip=config.hflip, seed=config.seed,
                                 num_examples=dataset.num_train)
    with strategy.scope():
        model = model_fn()
        schedule = schedules.build(config.lr_schedule, config.learning_rate, total_steps,
                                   warmup_steps=warmup_steps)
        compile_fn(model, make_optimizer(config.optimizer, schedule, config.weight_decay))
    logging.info("training %s: %d epochs × %d steps, global batch %d on %d replica(s)",
                 model.name, config.epochs, steps_per_epoch, global_batch, replicas)
    history = model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=list(extra_callbacks) + standard_callbacks(stage_dir,
                                                                             global_batch),
                        verbose=2)
    losses = history.history.get("loss", [])
    if model.stop_training and losses and not all(tf.math.is_finite(l) for l in losses):
        raise UserError(f"loss became NaN in epoch {len(losses)}; the last good weights are in "
                        f"{stage_dir}/ckpt; lower --learning_rate")
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def evaluate(model, dataset, image_size, batch_size=256):
    """Top-1 accuracy and mean cross-entropy of `model` on the whole test split.

    Returns: {"test_accuracy": float in [0, 1], "test_loss": float (nats)}.
    """
    import numpy as np

    x, y = data_lib.test_arrays(dataset, image_size, batch_size)
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return {"test_accuracy": float(np.mean(np.argmax(logits, -1) == y)),
            "test_loss": float(np.mean(loss))}
