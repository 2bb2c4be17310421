"""Learning-rate schedules by name, all serializable (get_config / from_config).

Built on tf_keras's own schedules where one exists (CosineDecay with linear warm-up,
ExponentialDecay, PiecewiseConstantDecay); `Constant` is the one tftool adds, so that every
choice is a LearningRateSchedule that saves and reloads with the optimizer.
Steps are optimizer steps (global batches), not epochs.
"""
import tensorflow as tf
import tf_keras as keras

SCHEDULES = ("constant", "cosine", "cosine_warmup", "exponential", "piecewise")


@keras.saving.register_keras_serializable(package="tftool")
class Constant(keras.optimizers.schedules.LearningRateSchedule):
    """The same learning rate at every step."""

    def __init__(self, learning_rate):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        del step
        return tf.constant(self.learning_rate, tf.float32)

    def get_config(self):
        return {"learning_rate": self.learning_rate}


def build(name, learning_rate, total_steps, warmup_steps=0, decay_rate=0.1):
    """Returns the LearningRateSchedule `name` peaking at `learning_rate`.

    Args:
      name: one of SCHEDULES.
        constant: learning_rate throughout.
        cosine: cosine decay from learning_rate to 0 over total_steps (Loshchilov & Hutter 2017).
        cosine_warmup: linear warm-up from 0 over warmup_steps, then cosine decay to 0
          (Goyal et al. 2017 warm-up).
        exponential: learning_rate · decay_rate^(step / total_steps), smooth.
        piecewise: learning_rate, then ×0.1 at 50% and ×0.01 at 75% of total_steps.
      learning_rate: peak rate (> 0).
      total_steps: optimizer steps of the whole run (≥ 1).
      warmup_steps: steps of linear warm-up (cosine_warmup only), < total_steps.
      decay_rate: final factor of the exponential schedule.
    Raises:
      ValueError: unknown name (lists the allowed ones) or inconsistent steps.
    """
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps={total_steps}: must be ≥ 1")
    if name == "constant":
        return Constant(learning_rate)
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.0)
    if name == "cosine_warmup":
        warmup_steps = int(warmup_steps)
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps={warmup_steps}: must be in [0, {total_steps})")
        return keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else learning_rate, total_steps - warmup_steps, alpha=0.0,
            warmup_target=learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
    if name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(learning_rate, total_steps, decay_rate)
    if name == "piecewise":
        boundaries = [max(1, total_steps // 2), max(2, total_steps * 3 // 4)]
        values = [learning_rate, learning_rate * 0.1, learning_rate * 0.01]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"unknown lr_schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
