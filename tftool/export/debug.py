"""Which layers int8 quantization hurts, and an int8 model that keeps those layers in float.

Follows TensorFlow's "Inspecting quantization errors with quantization debugger" guide
(https://ai.google.dev/edge/litert/models/quantization_debugger): the debugger converts the
model with a NumericVerify op after every quantized op; each compares the op's dequantized
int8 output with the float op run on the same (dequantized) input, so a layer's statistics
measure the error that layer adds, not the error it inherits. The guide ranks layers by
rmse/scale, the root-mean-square error in units of the output's quantization step: uniform
rounding alone gives 1/sqrt(12) ≈ 0.29, so a layer well above that loses more than rounding.
Selective quantization (the guide's "denylisted_nodes") keeps the worst layers in float.

rmse/scale alone misses the commonest int8 failure, an activation tensor whose range is far
wider than the other layers' (an outlier channel, or rare inputs that calibration saw): its
error stays within half a step, but the step is so wide that its typical values round to zero,
and the damage shows up only in the layers that read it. The guide's table lists each layer's
range for that reason. `layer_errors` therefore ranks by
    score = max(rmse/scale ÷ (1/√12), range ÷ median range over the model's layers),
i.e. how many times worse than a healthy layer it is, by rounding or by resolution.
"""
import csv
import io

from tftool import UserError

import numpy as np
import tensorflow as tf

# rmse/scale of pure uniform rounding (quantization steps): the unit of a healthy layer.
ROUNDING_RMSE_SCALE = 1.0 / np.sqrt(12.0)


def _debugger(model, representative_dataset, debug_dataset, rgb_input, output):
    """A QuantizationDebugger over a calibrated int8 conversion of `model`, converted as
    convert.to_tflite converts it (serving_default: "image" -> `output`, RGB input for a
    1-channel model), so the selective model is as app-ready as the int8 export."""
    from tftool.export import convert

    if representative_dataset is None:
        raise ValueError("the quantization debugger needs a representative_dataset for "
                         "calibration")
    serve = convert.serving_function(model, rgb_input=rgb_input, output=output,
                                     gray_weights=convert.RGB_TO_GRAY_INT8)
    concrete = serve.get_concrete_function()
    channels = int(concrete.inputs[0].shape[-1])
    converter = convert.make_converter(concrete, model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = convert._rgb_representative(  # noqa: SLF001
        representative_dataset, channels)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics={"mean_abs_error": lambda diffs: np.mean(np.abs(diffs))})
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=convert._rgb_representative(  # noqa: SLF001
            debug_dataset or representative_dataset, channels),
        debug_options=options)


def _keras_layers(tensor_name, op, model):
    """The Keras layers a TFLite tensor name mentions (a fused op's name joins several:
    'model/conv0_1/Conv2D;model/bn0_1/FusedBatchNormV3;model/relu0_1/Relu'). The graph's
    output tensor is named after the signature call ('StatefulPartitionedCall:0'): it is the
    model's output layer unless it is the SOFTMAX the export adds (no Keras layer, like the
    rgb_to_gray conv: [])."""
    parts = set()
    for piece in tensor_name.split(";"):
        parts.update(piece.split("/"))
    found = [l.name for l in model.layers if l.name in parts]
    if not found and tensor_name.startswith("StatefulPartitionedCall") and op != "SOFTMAX":
        found = list(model.output_names)
    return found


def _statistics(debugger, model):
    debugger.run()
    buffer = io.StringIO()
    # The dump is the public way to get each NumericVerify's op, tensor name and scale.
    debugger.layer_statistics_dump(buffer)
    buffer.seek(0)
    rows = []
    for row in csv.DictReader(buffer):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        rows.append({
            "tensor": row["tensor_name"], "op": row["op_name"],
            "layers": _keras_layers(row["tensor_name"], row["op_name"], model),
            "rmse_scale": float(np.sqrt(mse) / scale) if scale else float("inf"),
            "mean_abs_error": float(row["mean_abs_error"]),
            "max_abs_error": float(row["max_abs_error"]),
            "mean_squared_error": mse, "scale": scale, "zero_point": int(row["zero_point"]),
            "range": 255.0 * scale,
        })
    median_range = float(np.median([r["range"] for r in rows])) if rows else 1.0
    for r in rows:
        r["range_ratio"] = float(r["range"] / median_range) if median_range else 1.0
        r["score"] = float(max(r["rmse_scale"] / ROUNDING_RMSE_SCALE, r["range_ratio"]))
    rows.sort(key=lambda r: r["score"], reverse=True)
    return rows


def layer_errors(model, representative_dataset, debug_dataset=None, rgb_input=True,
                 output="probabilities"):
    """Per-layer int8 quantization error of `model`, worst first.

    Args:
      model: tf_keras model, float32 [N, H, W, C] -> [N, K] (not QAT-wrapped).
      representative_dataset: calibration data, a callable yielding [float32 1xHxWxC] lists
        (data.representative_dataset).
      debug_dataset: data the errors are measured on, same form; None: the calibration data.
      rgb_input, output: as in convert.to_tflite (the graph that is debugged is the one the
        export converts).
    Returns:
      list of dicts, one per quantized op output, sorted by "score" descending:
        tensor (TFLite tensor name; what denylisted_nodes takes), op (TFLite op name),
        layers (the Keras layer names in the tensor name; [] for the ops the export adds,
        rgb_to_gray and SOFTMAX), rmse_scale (sqrt(MSE)/scale,
        quantization steps), mean_abs_error, max_abs_error, mean_squared_error (in the
        output's float units), scale, zero_point, range (255 × scale, float units),
        range_ratio (range ÷ the median range), score (see the module docstring).
    Raises:
      ValueError: no representative_dataset.
    """
    return _statistics(_debugger(model, representative_dataset, debug_dataset, rgb_input,
                                 output), model)


def selective_int8(model, representative_dataset, accept, budget=3, debug_dataset=None,
                   rgb_input=True, output="probabilities"):
    """An int8 model that passes `accept`, keeping the fewest worst layers in float.

    Converts to int8 first; if `accept` refuses it, keeps in float the layer with the largest
    score (layer_errors' order, measured once on the fully quantized model), then the two
    largest, ... until `accept` passes or `budget` layers are float. Float layers run as float
    ops between DEQUANTIZE/QUANTIZE (TFLITE_BUILTINS), so the model is int8 except there.

    Args:
      model: tf_keras model, float32 [N, H, W, C] -> [N, K].
      representative_dataset, debug_dataset, rgb_input, output: as in `layer_errors`.
      accept: callable(bytes of a .tflite) -> bool, the accuracy gate (e.g. TFLite accuracy
        ≥ float accuracy − 0.01 on the test split).
      budget: most layers kept in float, int ≥ 0.
    Returns:
      (content, kept): bytes of a .tflite with convert.to_tflite's serving_default signature
      ("image" -> `output`; RGB for a 1-channel model) and float32 input and output tensors
      (the debugger's non-debug model: fully_quantize is off so float layers can sit at the
      ends; feed pixel / 255, as for the float exports),
      and the layer_errors rows of the layers kept in float, in the order added ([] when
      plain int8 passes).
    Raises:
      ValueError: budget < 0 or no representative_dataset.
      UserError: `accept` still refuses with `budget` layers in float (names them).
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget={budget!r}: must be an integer ≥ 0")
    debugger = _debugger(model, representative_dataset, debug_dataset, rgb_input, output)
    ranked = _statistics(debugger, model)
    content = debugger.get_nondebug_quantized_model()
    kept = []
    while not accept(content):
        if len(kept) == min(budget, len(ranked)):
            names = ", ".join(f"{r['op']} {'+'.join(r['layers']) or r['tensor']}"
                              for r in kept) or "none"
            raise UserError(f"selective int8: {model.name} still fails the accuracy gate "
                            f"with {len(kept)} layer(s) kept in float ({names}); raise the "
                            f"budget, or try int16x8 or quantization-aware training")
        kept.append(ranked[len(kept)])
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=[r["tensor"] for r in kept])
        content = debugger.get_nondebug_quantized_model()
    return content, kept
