"""Mixed precision for training on GPUs, and float32 models for everything that is saved.

Follows https://www.tensorflow.org/guide/mixed_precision: the `mixed_float16` policy computes
in float16 and keeps variables in float32; the logits layer is built with dtype float32
(models.py) so the softmax/cross-entropy is computed in float32; tf_keras `compile` wraps the
optimizer in a LossScaleOptimizer by itself under this policy.

A model trained this way still carries the policy in its layer configs; `to_float32` rebuilds
it with float32 layers and the same (float32) weights, so model.h5, the .tflite files and the
benchmark never compute in float16 (the float16 *export* variant is a separate, weight-only
choice in convert.py).
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError

import tensorflow as tf
import tf_keras as keras

MIXED = "mixed_float16"


def set_policy(mixed):
    """Sets the global Keras dtype policy: mixed_float16 if `mixed`, else float32.

    Call before any model is built. Raises:
      UserError: `mixed` on a machine without a GPU. float16 matrix math has no fast path on
        CPUs (it runs slower than float32 there), so the flag is refused rather than silently
        making a CPU run slower; drop it on CPU machines.
    """
    if mixed and not tf.config.list_physical_devices("GPU"):
        raise UserError("--mixed_precision needs a GPU (mixed_float16 is slower than float32 "
                        "on a CPU); drop the flag on this machine")
    keras.mixed_precision.set_global_policy(MIXED if mixed else "float32")


def is_float32(model):
    return all(layer.dtype_policy.name == "float32" for layer in model.layers)


def _float32_config(obj):
    # A layer config stores a non-default policy as {"class_name": "Policy", "config": {...}}.
    if isinstance(obj, dict):
        if obj.get("class_name") in ("Policy", "DTypePolicy") and "config" in obj:
            return "float32"
        return {k: _float32_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    return obj


def to_float32(model):
    """Returns `model` rebuilt with float32 layers and the same weights (or `model` itself).

    Args:
      model: a functional tf_keras model, possibly built under mixed_float16 (its variables are
        float32 either way, so the weights copy over unchanged).
    Returns:
      a functional model that computes in float32: float32 [N, H, W, C] -> float32 [N, K].
    """
    if is_float32(model):
        return model
    import tensorflow_model_optimization as tfmot

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        with tfmot.quantization.keras.quantize_scope():
            clone = type(model).from_config(_float32_config(model.get_config()))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    clone.set_weights(model.get_weights())
    return clone
