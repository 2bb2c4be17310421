"""Keras `fit` under a distribution strategy: the optimizer, the learning-rate schedule, the
phases of a run (head only, then fine-tuning), BN re-estimation after fit, the resume-state
check and the weights digest.

Every fit runs with the callbacks of train/callbacks.py (resume after a kill, last finite
weights, TensorBoard, NaN guard, throughput) and compiles with train/losses.py's loss.
"""
import dataclasses
import hashlib
import os
import time
from typing import Optional

from tftool import UserError, data as data_lib
from tftool.train import callbacks as callbacks_lib, losses, presets, schedules

from absl import logging
import tensorflow as tf
import tf_keras as keras

OPTIMIZERS = ("adam", "sgd")
# The global batch the default learning rates were tuned at (the fine-tuning batch × 1 replica).
REFERENCE_BATCH_SIZE = presets.FINE_TUNING["per_replica_batch_size"]
# A default warm-up takes at most this share of the run's steps (tftool-train's 1 epoch of 30
# is 3%: unchanged; with --epochs=1 it becomes a tenth of the one epoch).
WARMUP_MAX_FRACTION = 0.1


# The training settings TrainConfig leaves optional default to the fine-tuning settings every
# stage after the float one shares (train/presets.py FINE_TUNING, their one home); each stage
# passes its own (jobs.train_config, cli/shared.py).
_FINE_TUNING = presets.FINE_TUNING


@dataclasses.dataclass
class TrainConfig:
    """Hyperparameters of one training stage (the flags of train/quantize/prune/distill).

    epochs, learning_rate and lr_schedule are required: each stage has its own (jobs.DEFAULTS,
    train/presets.py). The other training settings default to presets.FINE_TUNING's.
    """
    epochs: int
    learning_rate: float
    lr_schedule: str
    per_replica_batch_size: int = _FINE_TUNING["per_replica_batch_size"]
    warmup_epochs: float = _FINE_TUNING["warmup_epochs"]
    # Whether the user set warmup_epochs. A default warm-up is scaled down to short runs
    # (at most WARMUP_MAX_FRACTION of the steps: `--epochs=1` works with the defaults); one the
    # user set is kept, and refused when it leaves no step after it.
    warmup_explicit: bool = True
    optimizer: str = _FINE_TUNING["optimizer"]
    weight_decay: float = _FINE_TUNING["weight_decay"]
    augment: bool = _FINE_TUNING["augment"]
    # The augmentation policy (data.AUGMENTATIONS) when augment is on.
    augmentation: str = _FINE_TUNING["augmentation"]
    hflip: bool = False
    # Label smoothing of the cross-entropy (Szegedy et al. 2016, §7): targets 1 - ε + ε/K and
    # ε/K. 0 = plain cross-entropy.
    label_smoothing: float = _FINE_TUNING["label_smoothing"]
    # SGD's momentum (Nesterov); Adam ignores it.
    momentum: float = _FINE_TUNING["momentum"]
    # An exponential moving average of the weights replaces them at the end of fit (Polyak
    # averaging; Keras optimizers' use_ema, https://www.tensorflow.org/api_docs/python/tf/
    # keras/optimizers/Optimizer): weight_ema = m · weight_ema + (1 - m) · weight each step.
    use_ema: bool = _FINE_TUNING["use_ema"]
    ema_momentum: float = _FINE_TUNING["ema_momentum"]
    seed: int = 0
    deterministic: bool = False  # op determinism: same seed -> bit-identical weights
    scale_lr: bool = False  # linear scaling: lr × global batch / reference_batch_size
    reference_batch_size: int = REFERENCE_BATCH_SIZE
    # Batches of training images (capped at one epoch) over which BN moving statistics are
    # re-estimated after fit (train/batchnorm.py); 0 keeps fit's moving averages.
    bn_batches: int = 50
    # Transfer learning (MediaPipe Model Maker's recipe): the first N epochs train only the
    # head (layer "logits") with the backbone frozen, the rest fine-tune every layer at
    # learning_rate × fine_tune_lr_factor. 0: one phase, everything trainable.
    freeze_backbone_epochs: int = 0
    fine_tune_lr_factor: float = 0.1
    # Keras execution knobs (https://www.tensorflow.org/api_docs/python/tf/keras/Model#compile):
    # optimizer steps per tf.function call (callbacks' batch hooks, the NaN guard included,
    # then see every k-th step), and XLA compilation of the train step.
    steps_per_execution: int = 1
    jit_compile: bool = False


def steps_per_epoch_of(num_train, config, replicas):
    """Optimizer steps per epoch: whole global batches (per-replica batch × replicas) in the
    train split; the last partial batch is dropped.

    Raises:
      UserError: the global batch is larger than the train split (names the flag).
    """
    steps = num_train // (config.per_replica_batch_size * replicas)
    if steps < 1:
        raise UserError(f"--per_replica_batch_size={config.per_replica_batch_size} × {replicas} "
                        f"replica(s) exceeds the {num_train} training images; lower it")
    return steps


def scaled_learning_rate(learning_rate, global_batch_size, reference_batch_size):
    """Linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §2.1).

    When the global batch grows k-fold, multiply the learning rate by k, so each epoch makes
    the same total update. Returns learning_rate × global_batch_size / reference_batch_size
    (a float, same unit as learning_rate). Pair it with warm-up (--lr_schedule=cosine_warmup)
    for large k, as the paper does.
    """
    return learning_rate * global_batch_size / reference_batch_size


def make_optimizer(name, learning_rate, weight_decay=_FINE_TUNING["weight_decay"],
                   momentum=_FINE_TUNING["momentum"], use_ema=_FINE_TUNING["use_ema"],
                   ema_momentum=_FINE_TUNING["ema_momentum"]):
    """Adam or SGD (Nesterov momentum) with decoupled weight decay (Loshchilov & Hutter 2019),
    optionally keeping an exponential moving average of the weights that replaces them when
    fit ends (Keras optimizers' use_ema / ema_momentum).

    Args:
      learning_rate: float or LearningRateSchedule.
      weight_decay: decoupled decay per step, × learning rate (Keras's convention); 0: none.
      momentum: SGD's momentum (Adam ignores it).
      use_ema, ema_momentum: the weight average and its decay per step.
      (Defaults: the digits preset's, as TrainConfig's.)
    Raises:
      ValueError: unknown name.
    """
    wd = weight_decay or None
    ema = {"use_ema": use_ema, "ema_momentum": ema_momentum} if use_ema else {}
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=wd, **ema)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True,
                                    weight_decay=wd, **ema)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def train(strategy, model_fn, dataset, image_size, config, stage_dir, extra_callbacks=(),
          compile_fn=None):
    """Builds, compiles and fits a model under `strategy`; returns (model, history dict).

    With config.freeze_backbone_epochs = N the fit runs in two phases (training_phases):
    head only, then every layer at a lower rate; the history concatenates both.

    Args:
      strategy: a tf.distribute.Strategy; model_fn, the optimizer and compile run in its scope.
      model_fn: () -> tf_keras model (float32 [N, H, W, C] -> [N, K] logits).
      dataset: a data.Dataset.
      image_size: (height, width).
      config: TrainConfig.
      stage_dir: where backup/, ckpt/ and logs/ go.
      extra_callbacks: stage-specific Keras callbacks (e.g. pruning's UpdatePruningStep).
      compile_fn: (model, optimizer) -> None (default: losses.default_compile with
        config.label_smoothing).
    Raises:
      UserError: the global batch is larger than the train split; the loss became NaN or
        infinite (names the epoch; the backup and checkpoint keep the last finite epoch);
        freeze_backbone_epochs out of range or shorter than the warm-up.
    """
    keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow seeds
    if compile_fn is None:
        def compile_fn(model, optimizer):
            losses.default_compile(model, optimizer, config.label_smoothing)
    if config.deterministic:
        # Deterministic kernels and tf.data (https://www.tensorflow.org/api_docs/python/tf/
        # config/experimental/enable_op_determinism); slower, mainly on GPU.
        tf.config.experimental.enable_op_determinism()
    replicas = strategy.num_replicas_in_sync
    global_batch = config.per_replica_batch_size * replicas
    learning_rate = config.learning_rate
    if config.scale_lr:
        learning_rate = scaled_learning_rate(config.learning_rate, global_batch,
                                             config.reference_batch_size)
        logging.info("--scale_lr: learning rate %g × %d / %d = %g", config.learning_rate,
                     global_batch, config.reference_batch_size, learning_rate)
    steps_per_epoch = steps_per_epoch_of(dataset.num_train, config, replicas)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    first_phase_steps = steps_per_epoch * (config.freeze_backbone_epochs or config.epochs)
    if not config.warmup_explicit:  # a default scaled to the run, never a refusal
        warmup_steps = min(warmup_steps, int(WARMUP_MAX_FRACTION * first_phase_steps))
    if config.lr_schedule == "cosine_warmup" and warmup_steps >= total_steps:
        raise UserError(f"--warmup_epochs={config.warmup_epochs:g} leaves no epoch after warm-up "
                        f"with --epochs={config.epochs}; pass a smaller --warmup_epochs (e.g. 0)")
    train_ds = data_lib.pipeline(dataset.train, image_size, global_batch, training=True,
                                 augment=config.augment, hflip=config.hflip, seed=config.seed,
                                 num_examples=dataset.num_train, repeat=True,
                                 augmentation=config.augmentation)
    with strategy.scope():
        model = model_fn()
    guard = callbacks_lib.NaNGuard()
    backup = os.path.join(stage_dir, "backup")
    histories = []
    for phase in training_phases(config, learning_rate, backup):
        if phase.trainable is not None:
            set_backbone_trainable(model, phase.trainable)
        phase_steps = steps_per_epoch * (phase.end_epoch - phase.start_epoch)
        if (config.lr_schedule == "cosine_warmup" and phase.start_epoch == 0
                and warmup_steps >= phase_steps):
            raise UserError(f"--warmup_epochs={config.warmup_epochs:g} must end before "
                            f"--freeze_backbone_epochs={config.freeze_backbone_epochs} do; "
                            f"pass a smaller --warmup_epochs")
        with strategy.scope():
            schedule = schedules.build(config.lr_schedule, phase.learning_rate, phase_steps,
                                       warmup_steps=warmup_steps if phase.start_epoch == 0
                                       else 0)
            compile_fn(model, make_optimizer(config.optimizer, schedule, config.weight_decay,
                                             config.momentum, config.use_ema,
                                             config.ema_momentum))
            if config.steps_per_execution != 1:
                model.steps_per_execution = config.steps_per_execution
            if config.jit_compile:
                model.jit_compile = True
        logging.info("training %s (%s): epochs %d-%d × %d steps, learning rate %g, global "
                     "batch %d on %d replica(s)", model.name, phase.name, phase.start_epoch + 1,
                     phase.end_epoch, steps_per_epoch, phase.learning_rate, global_batch,
                     replicas)
        check_resume_state(phase.backup_dir)
        try:
            # initial_epoch: epochs count from the start of training in both phases, so the
            # backup, TensorBoard and the NaN guard see one numbering; BackupAndRestore
            # replaces it with its own epoch when it restores.
            verbose = callbacks_lib.fit_verbosity()
            lines = [] if verbose else [callbacks_lib.EpochLine(os.path.basename(
                os.path.normpath(stage_dir)))]
            callbacks = list(extra_callbacks) + callbacks_lib.standard_callbacks(
                stage_dir, global_batch, guard, phase.backup_dir) + lines
            history = model.fit(train_ds, epochs=phase.end_epoch,
                                initial_epoch=phase.start_epoch,
                                steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                                verbose=verbose)
        except tf.errors.DataLossError as e:  # a damaged checkpoint found while restoring
            raise UserError(f"the resume state in {phase.backup_dir} is damaged "
                            f"({e.message.splitlines()[0]}); delete {backup}, or pass "
                            f"--overwrite to start the stage again") from e
        histories.append(history.history)
        if guard.tripped:
            break
    if guard.tripped:
        epoch = guard.epoch + 1  # 1-based, as fit prints it
        kept = (f"{stage_dir}/backup and {stage_dir}/ckpt keep epoch {epoch - 1}, the last "
                f"finite one (a re-run resumes there)" if epoch > 1 else
                "no epoch finished with a finite loss, so no weights were kept")
        raise UserError(f"loss became NaN/inf in epoch {epoch} (batch {guard.batch + 1}); "
                        f"stopped, {kept}; lower --learning_rate (now {learning_rate:g})")
    merged = {}
    for h in histories:
        for k, vs in h.items():
            merged.setdefault(k, []).extend(float(v) for v in vs)
    return model, merged


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs [start_epoch, end_epoch) of one model.fit; trainable: "head", "all" or None
    (leave the layers as built); backup_dir: its BackupAndRestore folder."""
    name: str
    start_epoch: int
    end_epoch: int
    learning_rate: float
    trainable: Optional[str]
    backup_dir: str


def training_phases(config, learning_rate, backup):
    """The fit calls of a run: one, or with config.freeze_backbone_epochs = N two — the head
    alone for N epochs at `learning_rate`, then every layer for the rest at learning_rate ×
    config.fine_tune_lr_factor (each with a new optimizer and schedule).

    Resume after a kill: each phase has its own BackupAndRestore folder (BACKUP/head, then
    BACKUP), because a phase's checkpoint holds its own optimizer's slots. A re-run restores
    the finished head phase (0 epochs left) and then resumes the fine-tuning phase.
    Raises:
      UserError: freeze_backbone_epochs not in [0, epochs).
    """
    n = config.freeze_backbone_epochs
    if not 0 <= n < config.epochs:
        raise UserError(f"--freeze_backbone_epochs={n} must be in [0, --epochs={config.epochs})"
                        f": at least one epoch fine-tunes the whole model")
    if n == 0:
        return [Phase("all layers", 0, config.epochs, learning_rate, None, backup)]
    return [Phase("head only, backbone frozen", 0, n, learning_rate, "head",
                  os.path.join(backup, "head")),
            Phase("fine-tuning all layers", n, config.epochs,
                  learning_rate * config.fine_tune_lr_factor, "all", backup)]


def set_backbone_trainable(model, which):
    """which="head": only the layer named models.HEAD_LAYER trains (Keras 2 also runs frozen
    BatchNormalization layers in inference mode, as transfer learning wants:
    https://keras.io/guides/transfer_learning/#fine-tuning); "all": every layer trains.

    Raises: UserError: "head" on a model without that layer.
    """
    from tftool import models

    names = [layer.name for layer in model.layers]
    if which == "head" and models.HEAD_LAYER not in names:
        raise UserError(f"--freeze_backbone_epochs: model {model.name} has no "
                        f"{models.HEAD_LAYER!r} layer to train alone")
    for layer in model.layers:
        layer.trainable = which == "all" or layer.name == models.HEAD_LAYER


def reestimate_batchnorm(model, dataset, image_size, config, replicas=1):
    """Re-estimates `model`'s BN moving statistics on training images (train/batchnorm.py).

    Uses min(config.bn_batches, steps per epoch) global batches of training images drawn at
    random (data.sample_pixels, seeded by config.seed), as at test time (no augmentation).
    Memory: those images as uint8 (50 × 64 at 160x160x3: 246 MB), not a second cache and
    shuffle buffer of the split. Call inside the strategy scope, after training and after any
    model -> model transform (strip, ...).
    Returns: the number of BN layers set (0 with config.bn_batches == 0 or no BN).
    """
    from tftool.train import batchnorm

    if not config.bn_batches or not batchnorm.batchnorm_layers(model):
        return 0
    global_batch = config.per_replica_batch_size * replicas
    num_batches = min(config.bn_batches, steps_per_epoch_of(dataset.num_train, config, replicas))
    start = time.perf_counter()
    pixels = data_lib.sample_pixels(dataset, image_size, num_batches * global_batch,
                                    seed=config.seed)
    batches = (pixels[i:i + global_batch].astype("float32") / 255.0
               for i in range(0, num_batches * global_batch, global_batch))
    count = batchnorm.reestimate(model, batches, num_batches)
    logging.info("re-estimated the moving statistics of %d BatchNormalization layers over %d "
                 "batches of %d training images in %.1f s", count, num_batches, global_batch,
                 time.perf_counter() - start)
    return count


def check_resume_state(backup_dir):
    """Raises UserError when BackupAndRestore's state in `backup_dir` is damaged from outside
    (an unparseable `checkpoint` file, a missing or truncated ckpt-N), naming the fix; does
    nothing when there is no state yet."""
    state = os.path.join(backup_dir, "chief")
    if not os.path.isdir(state):
        return
    try:
        latest = tf.train.latest_checkpoint(state)
        if latest is None and os.path.exists(os.path.join(state, "checkpoint")):
            raise ValueError("its checkpoint file names no readable checkpoint")
        if latest is not None:
            tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        message = getattr(e, "message", None) or str(e)
        raise UserError(f"the resume state in {backup_dir} is damaged "
                        f"({message.strip().splitlines()[0][:200]}); delete {backup_dir}, or "
                        f"pass --overwrite to start the stage again") from e


def weights_digest(model):
    """SHA-256 (hex, first 16 digits) of all weights' bytes in order: equal iff bit-identical.

    Under MultiWorkerMirroredStrategy reading BatchNormalization's moving statistics
    (sync-on-read variables) is a collective: every worker must call this together.
    """
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()[:16]
