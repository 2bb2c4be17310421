"""Keras model -> .tflite bytes, one quantization mode at a time (tf.lite.TFLiteConverter).

Modes (https://www.tensorflow.org/lite/performance/post_training_quantization):
  float32        no quantization.
  float16        weights stored as float16 (half the size; computed in float32 on CPU).
  dynamic_range  weights int8, activations float, quantized on the fly.
  int8           full-integer post-training quantization: int8 weights and activations,
                 calibrated on a representative_dataset; int8 input and output tensors.
  qat_int8       a QAT-wrapped model (optimize/qat.py): quantization ranges were learned in
                 training, no calibration; int8 input and output tensors.
  int16x8        16-bit activations, 8-bit weights (TFLite's "16x8" post-training mode), see
                 int16x8 below.
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)

import tensorflow as tf

MODES = ("float32", "float16", "dynamic_range", "int8", "qat_int8", "int16x8")


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
    if mode == "int16x8":
        return int16x8(model, representative_dataset, sparsity)
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


# What TF 2.21's converter and the LiteRT runtime say about an op without a 16x8 kernel.
_NO_16X8_OP = r"not yet supported for op: '(\w+)'"
_FAILED_NODE = r"Node number \d+ \((\w+)\) failed"


def int16x8(model, representative_dataset, sparsity=False):
    """16-bit activations, 8-bit weights: post-training quantization in TFLite's 16x8 mode.

    Follows https://ai.google.dev/edge/litert/models/post_training_integer_quant_16x8: weights
    int8 (per channel), activations int16 (symmetric, zero point 0) calibrated on
    `representative_dataset`, biases int64. Activations have 256x the resolution of int8, for
    models whose int8 accuracy suffers from activation ranges (the usual remedy before
    selective quantization, export/debug.py); the file is about the size of int8.

    The input and output stay float32 (the converter's default): QUANTIZE/DEQUANTIZE at the
    ends cost ~nothing, every client (MediaPipe, which accepts float32 or uint8 but not int16
    input, LiteRT, litert.Runner) can feed it as it feeds the float model, and an int16
    input would only move the same rescaling into the app.

    Ops: only TFLite builtins with 16x8 kernels (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16
    _WEIGHTS_INT8, no float fallback). Conv/Dense/pooling/ReLU/add/softmax have them; e.g.
    FLOOR, SQRT, SQUARE, DIV, POW, SIN, COS, ELU, L2_NORMALIZATION do not (TF 2.21).

    Args:
      model: tf_keras model, float32 [N, H, W, C] -> [N, K].
      representative_dataset: a callable yielding [float32 1xHxWxC] lists
        (data.representative_dataset).
      sparsity: also apply Optimize.EXPERIMENTAL_SPARSITY.
    Returns:
      bytes of a .tflite flatbuffer with float32 input and output tensors.
    Raises:
      ValueError: no representative_dataset.
      UserError: an op of the model has no 16x8 kernel (one line naming the op), whether the
        converter says so or (SQUARED_DIFFERENCE in TF 2.21) only the runtime does: the
        converted model is invoked once on zeros to find out.
    """
    import re

    import numpy as np

    from tftool import UserError

    if representative_dataset is None:
        raise ValueError("mode 'int16x8' needs a representative_dataset for calibration")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT] + (
        [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparsity else [])
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    try:
        content = converter.convert()
    except Exception as e:  # the converter raises RuntimeError (ConverterError in some TFs)
        match = re.search(_NO_16X8_OP, str(e))
        if match is None:
            raise
        raise UserError(f"int16x8: {model.name} has op {match.group(1)}, which TFLite cannot "
                        f"run with 16-bit activations; replace it or export int8/float16 "
                        f"instead") from e
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    try:
        interpreter.invoke()
    except RuntimeError as e:
        match = re.search(_FAILED_NODE, str(e))
        op = match.group(1) if match else str(e).splitlines()[0]
        raise UserError(f"int16x8: {model.name} has op {op}, which converts but has no 16x8 "
                        f"kernel in the TFLite runtime; replace it or export int8/float16 "
                        f"instead") from e
    return content
