"""Quantization-aware training (QAT) wrappers from tensorflow-model-optimization.

Follows https://www.tensorflow.org/model_optimization/guide/quantization/training and
Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference". The wrapped model simulates int8 weights (per-channel)
and activations (per-tensor) in its forward pass, so fine-tuning adapts to the rounding
that the TFLite int8 model will do.
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)

import tensorflow_model_optimization as tfmot

SCHEMES = ("default", "prune_preserve")


def apply(model, scheme="default"):
    """Returns a QAT-wrapped copy of functional/sequential `model` (the input is not changed).

    Call inside `strategy.scope()`: the wrappers create variables.

    Args:
      model: a functional or Sequential tf_keras model, float32 [N, H, W, C] -> [N, K].
      scheme: "default" (8-bit, tfmot's Default8BitQuantizeScheme) or "prune_preserve"
        (Default8BitPrunePreserveQuantizeScheme: keeps zero weights zero, for pruned models;
        see https://www.tensorflow.org/model_optimization/guide/combine/pqat_example).
    Raises:
      ValueError: unknown scheme (lists the allowed ones); tfmot's own ValueError/RuntimeError
        for a layer it cannot quantize.
    """
    q = tfmot.quantization.keras
    if scheme == "default":
        return q.quantize_model(model)
    if scheme == "prune_preserve":
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (  # noqa: E501
            default_8bit_prune_preserve_quantize_scheme as pqat)
        annotated = q.quantize_annotate_model(model)
        return q.quantize_apply(annotated, pqat.Default8BitPrunePreserveQuantizeScheme())
    raise ValueError(f"unknown QAT scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
