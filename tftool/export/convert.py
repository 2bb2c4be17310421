"""Keras model -> .tflite bytes, one quantization mode at a time (tf.lite.TFLiteConverter).

Modes (https://www.tensorflow.org/lite/performance/post_training_quantization):
  float32        no quantization.
  float16        weights stored as float16 (half the size; computed in float32 on CPU).
  dynamic_range  weights int8, activations float, quantized on the fly.
  int8           full-integer post-training quantization: int8 weights and activations,
                 calibrated on a representative_dataset; int8 input and output tensors.
  qat_int8       a QAT-wrapped model (optimize/qat.py): quantization ranges were learned in
                 training, no calibration; int8 input and output tensors.
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)

import tensorflow as tf

MODES = ("float32", "float16", "dynamic_range", "int8", "qat_int8")


def to_tflite(model, mode, representative_dataset=None, sparsity=False):
    """Converts a tf_keras model to TFLite flatbuffer bytes.

    Args:
      model: tf_keras model, float32 [N, H, W, C] -> [N, K] logits (QAT-wrapped for qat_int8).
      mode: one of MODES.
      representative_dataset: for int8, a callable yielding [float32 1xHxWxC] lists
        (data.representative_dataset).
      sparsity: also apply Optimize.EXPERIMENTAL_SPARSITY (pruned models: sparse encodings).
    Returns:
      bytes of a .tflite flatbuffer; int8 and qat_int8 have int8 input and output tensors.
    Raises:
      ValueError: unknown mode (lists the allowed ones), or int8 without representative_dataset.
    """
    if mode not in MODES:
        raise ValueError(f"unknown conversion mode {mode!r}; allowed: {', '.join(MODES)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = []
    if mode != "float32":
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparsity:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in ("int8", "qat_int8"):
        if mode == "int8":
            if representative_dataset is None:
                raise ValueError("mode 'int8' needs a representative_dataset for calibration")
            converter.representative_dataset = representative_dataset
            # Full integer: fail at conversion rather than ship a float fallback op. (Not for
            # QAT: the converter would then demand calibration data the model does not need.)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
