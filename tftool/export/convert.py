"""Keras model -> app-ready .tflite bytes, one quantization mode at a time.

What an app gets (MediaPipe Tasks ImageClassifier, LiteRT): one `serving_default` signature
with one input named `image` and one output named `probabilities` (softmax scores in [0, 1]
summing to 1) or `logits`.

The input is what a camera gives:
  - RGB: a model trained on 1-channel (grayscale) images gets an in-model RGB -> gray
    conversion at its input (ITU-R BT.601 luma, the weights of tf.image.rgb_to_grayscale, which
    is how tftool.data makes grayscale from RGB), so the app feeds its RGB frames [1, H, W, 3].
    rgb_input=False keeps the native 1-channel input (firmware feeding a gray sensor).
  - integer variants (int8, qat_int8): uint8 raw pixels 0..255 by default, with input
    quantization scale 1/255 and zero point 0, i.e. exactly the model's float [0, 1] range,
    as MediaPipe Model Maker exports (the app feeds pixels unchanged).
  - float variants (float32, float16, dynamic_range): float32 pixel/255 in [0, 1]. MediaPipe
    normalizes with the NormalizationOptions metadata (mean 0, std 255).

Modes (https://ai.google.dev/edge/litert/models/post_training_quantization):
  float32        no quantization.
  float16        weights stored as float16 (half the size; computed in float32 on CPU).
  dynamic_range  weights int8, activations float, quantized on the fly.
  int8           full-integer post-training quantization: int8 weights and activations,
                 calibrated on a representative_dataset; uint8 input, uint8 output by default.
  qat_int8       a QAT-wrapped model (optimize/qat.py): quantization ranges were learned in
                 training, no calibration; uint8 input, uint8 output by default. The ops this
                 module adds around the model (RGB -> gray, softmax) get fixed ranges (FakeQuant
                 ops: [0, 1] for pixels and gray, [0, 255/256] for probabilities), so the whole
                 graph stays integer.
  int16x8        16-bit activations, 8-bit weights (TFLite's experimental
                 EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 ops set), calibrated on
                 a representative_dataset; float32 input and output by default (int16 allowed).

No sparse encodings (Optimize.EXPERIMENTAL_SPARSITY): measured on digits at 80% sparsity they
shrank the raw pqat_int8 file 75 -> 43 KiB but grew its gzip 26.0 -> 28.4 KiB, left XNNPACK
latency unchanged (conv kernels are densified at load), and hid the zeros from the benchmark's
sparsity measurement. Zeros in a dense int8 buffer compress just as well.

Converter API: https://www.tensorflow.org/api_docs/python/tf/lite/TFLiteConverter
(from_concrete_functions, inference_input_type, inference_output_type).
"""
import contextlib

from tftool import graphless

import numpy as np
import tensorflow as tf

MODES = ("float32", "float16", "dynamic_range", "int8", "int8_per_tensor", "qat_int8", "int16x8")
INTEGER_MODES = ("int8", "int8_per_tensor", "qat_int8")
# Full-integer post-training modes: calibrated with a representative_dataset.
CALIBRATED_MODES = ("int8", "int8_per_tensor", "int16x8")
IO_TYPES = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}
INT16X8_IO_TYPES = {"float32": tf.float32, "int16": tf.int16}
OUTPUTS = ("probabilities", "logits")
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"
# ITU-R BT.601 luma weights exactly as tf.image.rgb_to_grayscale uses them (sum 0.9999).
RGB_TO_GRAY = (0.2989, 0.5870, 0.1140)
# The same weights as int8 can hold them, for modes that quantize the 1x1 gray kernel to int8
# (per-channel symmetric: scale = max|w| / 127). BT.601 itself quantizes to
# 65, 127, 25 × 0.587/127, which sum to 1.003: a gray pixel fed as R = G = B comes out one level brighter above 167/255,
# and a QAT digits model lost 0.003 test accuracy (measured). 64, 127, 25 / 216 sum to exactly 1
# (gray in = gray out, bit for bit) and are within 0.0027 of BT.601 per weight.
RGB_TO_GRAY_INT8 = (64 / 216, 127 / 216, 25 / 216)
# Name of the gray conversion op; its output tensor's name contains it in the .tflite (the
# sparsity measurement leaves this non-Keras kernel out).
GRAY_OP_NAME = "rgb_to_gray"
# Softmax output range in integer TFLite: the int8 SOFTMAX kernel requires scale 1/256 and
# zero point -128, i.e. the real range [0, 255/256].
PROBABILITY_MAX = 255.0 / 256.0


def _check(name, value, allowed, context=""):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}{context}; allowed: "
                         f"{', '.join(map(str, allowed))}")


def serving_function(model, rgb_input=True, output="probabilities", fake_quant=False,
                     gray_weights=RGB_TO_GRAY):
    """The tf.function that is converted: image -> {output: scores}.

    Args:
      model: tf_keras model, float32 [N, H, W, C] in [0, 1] -> [N, K] logits.
      rgb_input: for C == 1, take [N, H, W, 3] RGB and convert it to gray in the graph (a 1x1
        convolution with RGB_TO_GRAY weights); no effect for C == 3.
      output: "probabilities" (softmax of the logits) or "logits".
      fake_quant: add FakeQuant ops with fixed ranges at the input ([0, 1]), after the gray
        conversion ([0, 1]) and after the softmax ([0, 255/256]). Full-integer modes use it:
        for QAT-wrapped models, whose own FakeQuant ops cover only the Keras layers, the
        converter would otherwise leave the added ops in float; for post-training int8 it
        pins the input range to [0, 1] whatever the calibration images span.
      gray_weights: (R, G, B) weights of the gray conversion (RGB_TO_GRAY or RGB_TO_GRAY_INT8).
    Returns:
      tf.function with input_signature [TensorSpec([None, H, W, C'], float32, name="image")]
      returning {output: float32 [N, K]}.
    """
    h, w, channels = (int(d) for d in model.input_shape[1:])
    add_gray = rgb_input and channels == 1
    spec = tf.TensorSpec([None, h, w, 3 if add_gray else channels], tf.float32, name=INPUT_NAME)
    gray_kernel = tf.constant(np.reshape(gray_weights, (1, 1, 3, 1)), tf.float32)

    def quantize(x, max_value):
        if not fake_quant:
            return x
        return tf.quantization.fake_quant_with_min_max_args(x, min=0.0, max=max_value,
                                                            num_bits=8)

    @tf.function(input_signature=[spec])
    def serve(image):
        x = quantize(image, 1.0)
        if add_gray:
            x = quantize(tf.nn.conv2d(x, gray_kernel, strides=1, padding="VALID",
                                      name=GRAY_OP_NAME), 1.0)
        # an imported subclassed model's probabilities as they are (graphless.py)
        with (graphless.probabilities_out(model) if output == "probabilities"
              else contextlib.nullcontext(False)) as probabilities:
            scores = model(x, training=False)
        if output == "probabilities":
            scores = scores if probabilities else tf.nn.softmax(scores, axis=-1)
            scores = quantize(scores, PROBABILITY_MAX)
        return {output: scores}

    return serve


def make_converter(concrete, model):
    """tf.lite.TFLiteConverter.from_concrete_functions([concrete], ...) for a serving function
    of `model`, with a bare tf.Module holding the model's variables as its trackable object.

    The converter saves its trackable object as a SavedModel before converting; with the
    tf_keras model itself as that object the save also traces every layer's call functions
    for Keras's SavedModel metadata, which the converter never reads (measured, TF 2.21: an
    int8 efficientnet_lite0 at 32x32 converted in 11.0 s with the model, 2.5 s with the
    module, to the same bytes; float16 9.8 -> 1.9 s, its QAT model 25.5 -> 7.3 s). The module
    must hold every variable the function captures: the converter swallows a failed save and
    falls back to converting a frozen graph, to other bytes (measured: an imported subclassed
    model, whose variables live in a loaded SavedModel that model.variables does not list,
    converted to 3,824 instead of 3,392 bytes). So it holds the model's variables and the
    function's captured ones (concrete.variables lists those).
    """
    holder = tf.Module()
    seen = {id(v) for v in model.variables}
    holder.model_variables = list(model.variables) + [
        v for v in concrete.variables if id(v) not in seen]
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)


def _rgb_representative(representative_dataset, channels):
    """Feeds 1-channel calibration images as RGB (R = G = B = gray) to an RGB-input graph."""
    def gen():
        for sample in representative_dataset():
            image = np.asarray(sample[0], np.float32)
            if image.shape[-1] == 1 and channels == 3:
                image = np.repeat(image, 3, axis=-1)
            yield [image]
    return gen


def to_tflite(model, mode, representative_dataset=None, *, inference_input_type=None,
              inference_output_type=None, rgb_input=True, output="probabilities"):
    """Converts a tf_keras model to TFLite flatbuffer bytes with a clean serving signature.

    Args:
      model: tf_keras model, float32 [N, H, W, C] in [0, 1] -> [N, K] logits (QAT-wrapped
        for qat_int8).
      mode: one of MODES. "int8_per_tensor" is "int8" with one weight scale per tensor
        instead of per output channel (for clustered models: a kernel of k centroids keeps k
        int8 values; the TFLite int8 spec allows both, https://www.tensorflow.org/lite/
        performance/quantization_spec).
      representative_dataset: for int8, int8_per_tensor and int16x8, a callable yielding
        [float32 1xHxWxC] lists in [0, 1] at the model's native C
        (data.representative_dataset); 1-channel images are replicated to RGB for an
        RGB-input export. Its pixel range does not set
        the input quantization of int8: that is fixed to [0, 1] (a FakeQuant op on the input).
      inference_input_type / inference_output_type: "uint8", "int8" or "float32" for int8 and
        qat_int8 (default "uint8": raw pixels, scale 1/255, zero point 0; output scale 1/256
        for probabilities); "float32" or "int16" for int16x8 (default "float32"); float modes
        accept only None or "float32".
      rgb_input: True: a 1-channel model takes RGB [N, H, W, 3] (in-model BT.601 luma);
        False: its native [N, H, W, 1].
      output: "probabilities" (softmax, in [0, 1], summing to 1) or "logits".
    Returns:
      bytes of a .tflite flatbuffer with signature "serving_default": input "image" ->
      output `output`, float32 [N, K] or quantized per inference_output_type.
    Raises:
      ValueError: an unknown mode, input/output type or output (lists the allowed ones), or
        int8/int16x8 without representative_dataset.
      UserError: int16x8 and an op of the model has no 16x8 kernel (one line naming the op).
    """
    _check("conversion mode", mode, MODES)
    _check("output", output, OUTPUTS)
    if mode in INTEGER_MODES:
        io_types, default_io = IO_TYPES, "uint8"
    elif mode == "int16x8":
        io_types, default_io = INT16X8_IO_TYPES, "float32"
    else:
        io_types, default_io = {"float32": tf.float32}, "float32"
    input_type = default_io if inference_input_type is None else inference_input_type
    output_type = default_io if inference_output_type is None else inference_output_type
    _check("inference_input_type", input_type, tuple(io_types), f" for mode {mode!r}")
    _check("inference_output_type", output_type, tuple(io_types), f" for mode {mode!r}")
    if mode in CALIBRATED_MODES and representative_dataset is None:
        raise ValueError(f"mode {mode!r} needs a representative_dataset for calibration")

    # The int8 input range must be exactly [0, 1] so that uint8 pixels map 1:1 (scale 1/255,
    # zero point 0); calibration alone takes it from the data's min/max (measured: calibration
    # images in [0, 0.6] gave input scale 0.00235 = 0.6/255), so int8 pins it with the same
    # FakeQuant op as qat_int8. For QAT the FakeQuant ops are needed for the graph to be integer
    # at all: without them the converter kept the RGB -> gray conv in float and a float32 input
    # despite inference_input_type=uint8 (measured, TF 2.21).
    # (tests/test_convert.py::test_integer_input_is_raw_pixels_whatever_the_calibration)
    fake_quant = mode in INTEGER_MODES
    gray_weights = RGB_TO_GRAY_INT8 if mode in INTEGER_MODES + ("int16x8",) else RGB_TO_GRAY
    serve = serving_function(model, rgb_input=rgb_input, output=output, fake_quant=fake_quant,
                             gray_weights=gray_weights)
    concrete = serve.get_concrete_function()
    converter = make_converter(concrete, model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in CALIBRATED_MODES:
        channels = int(concrete.inputs[0].shape[-1])
        converter.representative_dataset = _rgb_representative(representative_dataset, channels)
        if mode == "int8_per_tensor":
            from tftool import internals

            internals.disable_per_channel_weights(converter)
        if mode in ("int8", "int8_per_tensor"):
            # Full integer: fail at conversion rather than ship a float fallback op. (Not for
            # QAT: the converter would then demand calibration data the model does not need.)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.inference_input_type = io_types[input_type]
    converter.inference_output_type = io_types[output_type]
    if mode == "int16x8":
        return _convert_int16x8(converter, model.name)
    content = converter.convert()
    if mode in INTEGER_MODES and output == "probabilities" and inference_output_type is None:
        content = float_softmax_tail(content)
    return content


def float_softmax_tail(content):
    """Rewrites an integer model's last op, the int8 SOFTMAX (and the QUANTIZE to uint8 after
    it), as DEQUANTIZE of the int8 logits followed by a float32 SOFTMAX: float32 probabilities
    out, the rest of the model unchanged and integer.

    Why: a uint8 softmax output rounds each of the K scores to 1/256, so their sum is off by
    up to K/512 (measured on digits, K = 10: 0.0117 for the worst test image), where apps and
    MediaPipe's score thresholds expect scores summing to 1; the float softmax over K numbers
    costs nothing measurable. Works on the flatbuffer with LiteRT's own schema tools
    (ai_edge_litert.tools.flatbuffer_utils); the serving_default signature's output is
    re-pointed at the new tensor, under the same name.
    Args:
      content: .tflite bytes whose output is SOFTMAX [-> QUANTIZE] of int8 logits.
    Returns:
      .tflite bytes with a float32 [N, K] output.
    Raises:
      ValueError: the model does not end in an int8 SOFTMAX.
    """
    import copy

    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(c)
             for c in model.operatorCodes]
    ops = graph.operators
    index = next((i for i, op in enumerate(ops)
                  if codes[op.opcodeIndex] == schema.BuiltinOperator.SOFTMAX), None)
    if index is None or any(codes[op.opcodeIndex] not in (schema.BuiltinOperator.QUANTIZE,
                                                           schema.BuiltinOperator.DEQUANTIZE)
                            for op in ops[index + 1:]):
        raise ValueError("the model does not end in SOFTMAX: nothing to rewrite")
    softmax = ops[index]
    logits = graph.tensors[softmax.inputs[0]]
    if logits.type != schema.TensorType.INT8:
        raise ValueError("the softmax input is not int8: nothing to rewrite")
    old_output = graph.outputs[0]

    def new_tensor(name):
        tensor = copy.deepcopy(logits)
        tensor.type, tensor.quantization, tensor.name = schema.TensorType.FLOAT32, None, name
        tensor.buffer = 0  # no data: an activation
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def opcode(builtin, version):
        for i, code in enumerate(codes):
            if code == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = version
        model.operatorCodes.append(code)
        codes.append(builtin)
        return len(codes) - 1

    logits_float = new_tensor(b"logits_float")
    probabilities = new_tensor(graph.tensors[old_output].name)
    dequantize = schema.OperatorT()
    dequantize.opcodeIndex = opcode(schema.BuiltinOperator.DEQUANTIZE, 2)  # v2: int8 input
    dequantize.inputs, dequantize.outputs = [softmax.inputs[0]], [logits_float]
    softmax.inputs, softmax.outputs = [logits_float], [probabilities]
    graph.operators = ops[:index] + [dequantize, softmax]
    graph.outputs = [probabilities]
    for signature in model.signatureDefs or []:
        for tensor_map in signature.outputs:
            if tensor_map.tensorIndex == old_output:
                tensor_map.tensorIndex = probabilities
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# What TF 2.21's converter and the LiteRT runtime say about an op without a 16x8 kernel.
_NO_16X8_OP = r"not yet supported for op: '(\w+)'"
_FAILED_NODE = r"Node number \d+ \((\w+)\) failed"


def _convert_int16x8(converter, name):
    """converter.convert() for int16x8, with an op that has no 16x8 kernel as one UserError
    line naming the op. The converter refuses most such ops (RuntimeError "Quantization to
    16x8-bit not yet supported for op: 'FLOOR'"; also SQRT, SQUARE, DIV, POW, SIN, COS, ELU,
    L2_NORMALIZATION in TF 2.21); a few convert and fail only when run (SQUARED_DIFFERENCE:
    "only supports FLOAT32 and INT32"), so the result is invoked once on zeros."""
    import re

    from ai_edge_litert.interpreter import Interpreter

    from tftool import UserError

    try:
        content = converter.convert()
    except Exception as e:  # RuntimeError in TF 2.21 (ConverterError in some versions)
        match = re.search(_NO_16X8_OP, str(e))
        if match is None:
            raise
        raise UserError(f"int16x8: {name} has op {match.group(1)}, which TFLite cannot run "
                        f"with 16-bit activations; replace it or export int8/float16 "
                        f"instead") from e
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    try:
        interpreter.invoke()
    except RuntimeError as e:
        match = re.search(_FAILED_NODE, str(e))
        op = match.group(1) if match else str(e).splitlines()[0]
        raise UserError(f"int16x8: {name} has op {op}, which converts but has no 16x8 kernel "
                        f"in the TFLite runtime; replace it or export int8/float16 "
                        f"instead") from e
    return content
