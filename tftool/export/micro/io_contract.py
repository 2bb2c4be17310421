"""The model's input and output as firmware feeds and reads them, read from the flatbuffer:
io_details (dtype, shape, scale, zero point, the formula from an 8-bit pixel, logits or
probabilities), pixel_formula, and card_section (the same for the model card's "micro" section,
with what differs from the app's .tflite).
"""
import math

import numpy as np

from tftool import UserError
from tftool.export.micro.model import _model, _op_kind_name

# What the op writing the output tensor makes of it (skipping pure type conversions, e.g. the
# QUANTIZE of a uint8-output export): kind of output firmware reads.
_OUTPUT_KINDS = {"SOFTMAX": "probabilities", "LOG_SOFTMAX": "log_probabilities"}
_CONVERSIONS = ("QUANTIZE", "DEQUANTIZE")


def _tensor(model, index):
    """(dtype name, shape list, scale float, zero point int) of subgraph 0's tensor `index`;
    scale 0.0 and zero point 0 for a tensor that is not quantized."""
    from ai_edge_litert.tools import flatbuffer_utils

    tensor = model.Subgraphs(0).Tensors(index)
    dtype = flatbuffer_utils.type_to_name(tensor.Type()).lower()
    shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
    quantization = tensor.Quantization()
    scales = (quantization.ScaleAsNumpy() if quantization is not None
              and quantization.ScaleLength() else np.zeros(0, np.float32))
    zero_points = (quantization.ZeroPointAsNumpy() if quantization is not None
                   and quantization.ZeroPointLength() else np.zeros(0, np.int64))
    if len(scales) > 1:
        raise UserError(f"tensor {index} is quantized per channel ({len(scales)} scales); "
                        f"tftool describes models with one input/output scale")
    scale = float(np.float32(scales[0])) if len(scales) else 0.0
    zero_point = int(zero_points[0]) if len(zero_points) else 0
    return dtype, shape, scale, zero_point


def _io_counts(subgraph):
    """E.g. "1 input and 2 outputs"."""
    inputs, outputs = subgraph.InputsLength(), subgraph.OutputsLength()
    return (f"{inputs} input{'' if inputs == 1 else 's'} and "
            f"{outputs} output{'' if outputs == 1 else 's'}")


def _producer(model, index):
    """(operator, its builtin name, or "custom <code>") of subgraph 0's operator that writes
    tensor `index`; (None, None) when no operator does (a graph input)."""
    subgraph = model.Subgraphs(0)
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        if index in [int(t) for t in op.OutputsAsNumpy()]:
            kind, name = _op_kind_name(model, op.OpcodeIndex())
            return op, name if kind == "builtin" else f"custom {name}"
    return None, None


def pixel_formula(dtype, scale, zero_point):
    """How firmware turns an 8-bit camera pixel (0..255) into the model's input value.

    tftool's models are trained on x = pixel / 255 in [0, 1]; an integer input holds
    q = round(x / scale) + zero_point, clamped to the type's range. When that is pixel plus a
    constant for every pixel 0..255 (scale 1/255 as float32), the formula says so: "q = pixel"
    (uint8, zero point 0) or "q = pixel - 128" (int8, zero point -128).
    Args:
      dtype: numpy dtype name of the input tensor, e.g. "int8", "uint8", "float32".
      scale: float, the tensor's scale (ignored for float32); zero_point: int.
    Returns:
      str, e.g. "q = pixel - 128" or "q = round(pixel / 255 / 0.0078125) - 1, clamped to
      -128..127" or "x = pixel / 255.0" (float input).
    Raises:
      ValueError: an integer dtype with scale ≤ 0.
    """
    if not np.issubdtype(np.dtype(dtype), np.integer):
        return "x = pixel / 255.0"
    if not scale > 0:
        raise ValueError(f"{dtype} input with scale {scale}: a quantized input has scale > 0")
    info = np.iinfo(np.dtype(dtype))
    pixels = np.arange(256, dtype=np.float64)
    exact = np.clip(np.round(pixels / 255.0 / np.float32(scale)) + zero_point,
                    info.min, info.max)
    clamp = f", clamped to {info.min}..{info.max}"
    offset = "" if zero_point == 0 else f" {'-' if zero_point < 0 else '+'} {abs(zero_point)}"
    if np.array_equal(exact, np.clip(pixels + zero_point, info.min, info.max)):
        clipped = zero_point < info.min or zero_point + 255 > info.max
        return f"q = pixel{offset}{clamp if clipped else ''}"
    return f"q = round(pixel / 255 / {str(np.float32(scale))}){offset}{clamp}"


def io_details(tflite_bytes):
    """The model's input and output as firmware feeds and reads them, read from the flatbuffer.

    Everything comes from the file's tensors and graph (subgraph 0), nothing is assumed: a
    micro export (int8 input, zero point -128, int8 logits) differs from the app's .tflite of
    the same variant (uint8 input, zero point 0, float32 probabilities).
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes) with one input and one output.
    Returns:
      dict with
        "input": dtype (numpy name: "int8", "uint8", "int16", "float32"), shape ([int], e.g.
          [1, 8, 8, 1], NHWC), channels (int, the last dimension), scale (float, the file's
          float32; 0.0 when not quantized), zero_point (int), formula (str, pixel_formula:
          the input value from an 8-bit pixel 0..255);
        "output": dtype, shape ([1, K]), num_classes (int K, the last dimension), scale,
          zero_point, kind ("probabilities" when the op writing the output, type conversions
          skipped, is SOFTMAX; "log_probabilities" for LOG_SOFTMAX; else "logits"), last_op
          (that op's builtin name, e.g. "FULLY_CONNECTED").
    Raises:
      UserError: not a .tflite flatbuffer; not exactly one input and one output; an input or
        output quantized per channel.
    """
    model = _model(tflite_bytes)
    subgraph = model.Subgraphs(0)
    if subgraph.InputsLength() != 1 or subgraph.OutputsLength() != 1:
        raise UserError(f"the model has {_io_counts(subgraph)}; tftool describes models "
                        f"with one input and one output")
    dtype, shape, scale, zero_point = _tensor(model, int(subgraph.Inputs(0)))
    inp = {"dtype": dtype, "shape": shape, "channels": shape[-1] if shape else 1,
           "scale": scale, "zero_point": zero_point,
           "formula": pixel_formula(dtype, scale, zero_point)}
    index = int(subgraph.Outputs(0))
    dtype, shape, scale, zero_point = _tensor(model, index)
    op, last_op = _producer(model, index)
    while last_op in _CONVERSIONS:
        op, last_op = _producer(model, int(op.InputsAsNumpy()[0]))
    out = {"dtype": dtype, "shape": shape, "num_classes": shape[-1] if shape else 1,
           "scale": scale, "zero_point": zero_point,
           "kind": _OUTPUT_KINDS.get(last_op, "logits"), "last_op": last_op}
    return {"input": inp, "output": out}


def card_section(tflite_bytes, labels, app_card=None):
    """The model card's "micro" fields that say how to feed and read the micro model.

    Args:
      tflite_bytes: the micro .tflite flatbuffer (bytes), as written to the C array.
      labels: class names in output order (len = the output's num_classes).
      app_card: the variant's model card (export/card.py model_card), whose top-level "input"
        and "output" describe the app's .tflite; None: no comparison.
    Returns:
      dict: "input" and "output" (io_details), "labels" (list of str); with app_card also
      "io_differences" ([{"field": "input.zero_point", "micro": -128, "app": 0}, ...]: every
      input/output field in which the micro model differs from the app's file; [] when none)
      and "io_note" (one sentence saying which to follow).
    Raises:
      ValueError: len(labels) differs from the output's num_classes.
      UserError: see io_details.
    """
    details = io_details(tflite_bytes)
    labels = [str(label) for label in labels]
    if len(labels) != details["output"]["num_classes"]:
        raise ValueError(f"{len(labels)} labels for a model with "
                         f"{details['output']['num_classes']} outputs")
    section = {**details, "labels": labels}
    if app_card is None:
        return section
    app_in, app_out = app_card.get("input") or {}, app_card.get("output") or {}
    pairs = [("input.dtype", details["input"]["dtype"], app_in.get("dtype")),
             ("input.shape", details["input"]["shape"], app_in.get("shape")),
             ("input.scale", details["input"]["scale"], app_in.get("scale")),
             ("input.zero_point", details["input"]["zero_point"], app_in.get("zero_point")),
             ("input.formula", details["input"]["formula"],
              (app_card.get("preprocessing") or {}).get("formula")),
             ("output.dtype", details["output"]["dtype"], app_out.get("dtype")),
             ("output.scale", details["output"]["scale"], app_out.get("scale")),
             ("output.zero_point", details["output"]["zero_point"], app_out.get("zero_point")),
             ("output.kind", details["output"]["kind"], app_out.get("meaning"))]
    differences = [{"field": field, "micro": mine, "app": theirs}
                   for field, mine, theirs in pairs
                   if not (mine == theirs or isinstance(mine, float)
                           and isinstance(theirs, (int, float))
                           and math.isclose(mine, theirs, rel_tol=1e-6, abs_tol=0.0))]
    app_file = app_card.get("file", "the app's .tflite")
    section["io_differences"] = differences
    if differences:
        section["io_note"] = (
            f"The micro C array is another flatbuffer than {app_file}: "
            + "; ".join(f"{d['field']} {d['micro']} (not {d['app']})" for d in differences)
            + ". Firmware must feed and read it per this section's input and output, not the "
              "card's top-level input, output and preprocessing.")
    else:
        section["io_note"] = f"The micro C array has the same input and output as {app_file}."
    return section
