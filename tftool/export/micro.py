""".tflite bytes -> what a TensorFlow Lite Micro (TFLM) firmware needs, with measured figures.

Takes the bytes of any full-integer (int8 or uint8 I/O) or float .tflite flatbuffer, however it
was made, and returns:
  c_source            <name>_model_data.h / .cc: the flatbuffer as an aligned C array
  op_resolver_header  <name>_op_resolver.h: a tflite::MicroMutableOpResolver<N> with exactly
                      the model's N distinct ops
  ops                 the model's builtin op names (UserError for an op TFLM lacks)
  io_details          its input and output as firmware feeds and reads them (dtype, shape,
                      scale, zero point, the formula from an 8-bit pixel, logits or
                      probabilities), read from the flatbuffer
  card_section        the same for the model card's "micro" section, with what differs from
                      the app's .tflite
  smallest_arena      the smallest tensor arena (bytes) with which TFLM allocates and invokes
  arena_with_margin   that size plus MARGIN, rounded up to whole KiB
  arena_used_bytes    what TFLM's RecordingMicroAllocator reports as used
  compare_with_litert TFLM against LiteRT on the same quantized images
  footprint           the report row: flash, arena, ops, fits the budget, message

Follows the TFLM guides "Get started with microcontrollers"
(https://ai.google.dev/edge/litert/microcontrollers/get_started: the model is an `alignas(16)`
C array, ops are registered on a MicroMutableOpResolver, the tensor arena "may need to be
determined by experimentation") and TFLM's memory-management doc, whose RecordingMicroAllocator
reports the arena actually used:
https://github.com/tensorflow/tflite-micro/blob/main/tensorflow/lite/micro/docs/memory_management.md

Arena figures come from the `tflite-micro` Python interpreter (reference kernels, 64-bit host).
On a board they differ: pointers in TFLM's per-tensor/per-node structs are 4 bytes on
Cortex-M/ESP32, not 8 (the host figure is larger), while optimized kernels (CMSIS-NN, ESP-NN) may
request scratch buffers the reference kernels do not (the board needs more). MARGIN covers the
small differences; confirm on the board with MicroInterpreter::arena_used_bytes().
"""
import functools
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from tftool import UserError

# Extra arena on top of the measured smallest size (fraction), then rounded up to ARENA_ROUNDING
# bytes. Why 10 %: the host measurement is already exact for the pinned TFLM and larger than
# a 32-bit board needs for TFLM's own structs (8-byte pointers here), so the margin is for what
# the host cannot see: another TFLM version on the board, and kernels that ask for a little
# scratch. Measured for scale: digits small_cnn width 8 needs 3984 B (int8 I/O) and 4368 B
# (uint8 I/O), 4.6 % and 7.9 % above the 3808 B / 4048 B the recording allocator reports as
# used. Optimized kernels with large im2col scratch (CMSIS-NN, ESP-NN) can need more than 10 %:
# check arena_used_bytes() on the board. Whole KiB: what firmware writes as
# `constexpr int kTensorArenaSize = N * 1024;`.
MARGIN = 0.10
ARENA_ROUNDING = 1024

# Seconds one TFLM probe (a fresh Python process) may take; an 8x8 CNN takes < 1 s.
PROBE_TIMEOUT_S = 120
# Largest arena tried before giving up: 16 MiB is beyond every MCU's SRAM+PSRAM we target.
MAX_ARENA_BYTES = 16 * 1024 * 1024

# BuiltinOperator name -> the MicroMutableOpResolver method that registers it. Read from
# tensorflow/lite/micro/micro_mutable_op_resolver.h of tflite-micro at commit 90b983c
# (2026-08-20), the tree the pinned tflite-micro wheel (built from 8f6596d, 2026-10) follows.
# Custom ops (AddCircularBuffer, AddDetectionPostprocess, the Signal ops, AddEthosU) are not
# listed: tftool's exports contain builtin ops only, and a custom op is reported as unsupported.
TFLM_OPS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound", "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt", "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub",
    "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BYTES_PER_LINE = 12


def _check_name(name):
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"name={name!r}: must be a C identifier (letters, digits, _; not "
                         f"starting with a digit), e.g. 'digits_int8'")


def _model(tflite_bytes):
    """The flatbuffer's lazy `tflite.Model` view (nothing is copied).

    Read with ai_edge_litert.tools.flatbuffer_utils: the schema module LiteRT itself ships
    (generated from the same schema.fbs as the converter we run), so no second schema package
    can lag behind it.
    Raises:
      UserError: the bytes are not a TFLite flatbuffer (no "TFL3" file identifier).
    """
    from ai_edge_litert.tools import flatbuffer_utils

    data = bytes(tflite_bytes)
    if len(data) < 8 or not flatbuffer_utils.Model.ModelBufferHasIdentifier(data, 0):
        raise UserError(f"{len(data)} bytes are not a .tflite model (no TFL3 identifier); "
                        f"export it again with tftool-export")
    return flatbuffer_utils.Model.GetRootAs(data, 0)


def model_ops(tflite_bytes):
    """Every distinct operator the model runs, in any subgraph, as (kind, name) pairs.

    kind is "builtin" (name: the BuiltinOperator name, e.g. "CONV_2D") or "custom" (name: the
    custom code). Unlike `ops`, this does not check TFLM support.
    Returns:
      sorted list of (str, str).
    Raises:
      UserError: not a .tflite flatbuffer.
    """
    model = _model(tflite_bytes)
    used = set()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for i in range(subgraph.OperatorsLength()):
            used.add(subgraph.Operators(i).OpcodeIndex())
    return sorted({_op_kind_name(model, index) for index in used})


def _op_kind_name(model, opcode_index):
    """("builtin", BuiltinOperator name) or ("custom", custom code) of one operator code."""
    from ai_edge_litert.tools import flatbuffer_utils

    opcode = model.OperatorCodes(opcode_index)
    code = flatbuffer_utils.get_builtin_code_from_operator_code(opcode)
    if code == flatbuffer_utils.BuiltinOperator.CUSTOM:
        return "custom", (opcode.CustomCode() or b"").decode("utf-8", "replace")
    names = {value: key for key, value in vars(flatbuffer_utils.BuiltinOperator).items()
             if not key.startswith("_")}
    return "builtin", names.get(code, f"builtin code {code}")


def ops(tflite_bytes):
    """The model's distinct builtin ops, checked against TFLM.

    Args:
      tflite_bytes: a .tflite flatbuffer (bytes).
    Returns:
      sorted list of BuiltinOperator names, e.g. ["CONV_2D", "FULLY_CONNECTED", ...].
    Raises:
      UserError: not a .tflite flatbuffer, or an op TFLM's MicroMutableOpResolver has no Add
        method for (each such op is named), including every custom op.
    """
    found = model_ops(tflite_bytes)
    missing = [f"custom op {name!r}" if kind == "custom" else name
               for kind, name in found if kind == "custom" or name not in TFLM_OPS]
    if missing:
        raise UserError(f"TensorFlow Lite Micro has no kernel for {', '.join(missing)}: this "
                        f"model cannot run on a microcontroller; export a variant without it")
    return [name for _, name in found]


# What the op writing the output tensor makes of it (skipping pure type conversions, e.g. the
# QUANTIZE of a uint8-output export): kind of output firmware reads.
_OUTPUT_KINDS = {"SOFTMAX": "probabilities", "LOG_SOFTMAX": "log_probabilities"}
_CONVERSIONS = ("QUANTIZE", "DEQUANTIZE")
# numpy dtype name -> the C++ type firmware declares its input/output buffer with.
_C_TYPES = {"int8": "std::int8_t", "uint8": "std::uint8_t", "int16": "std::int16_t",
            "int32": "std::int32_t", "float32": "float"}


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


def c_source(tflite_bytes, name, arena=None, labels=None):
    """The model as a C array for TFLM firmware: (header_text, source_text).

    The header `<name>_model_data.h` declares
      extern const unsigned char <name>_model_data[];
      extern const unsigned int <name>_model_data_len;
    and the source `<name>_model_data.cc` includes it and defines the array `alignas(16)`
    (TFLM reads tensors in place from the flatbuffer; 16 bytes is the alignment TFLM's own
    generate_cc_arrays.py uses). Both are C++ (alignas needs C++11).

    For a model with one input and one output, the header also says how to feed and read
    it, read from these bytes (io_details), each `constexpr` and prefixed with <name>_:
      input:  typedef <C type> <name>_input_t; char <name>_input_dtype[] ("int8");
              int <name>_input_shape[] ({1, H, W, C}); for a rank-4 input int
              <name>_input_batch/_height/_width; int <name>_input_channels; int
              <name>_input_bytes; float <name>_input_scale; int <name>_input_zero_point; and a
              comment with the formula from an 8-bit pixel (e.g. q = pixel - 128);
      output: typedef <name>_output_t; char <name>_output_dtype[]; float
              <name>_output_scale; int <name>_output_zero_point; char <name>_output_kind[]
              ("logits", "probabilities", "log_probabilities"); bool
              <name>_output_is_probabilities (the op writing the output is SOFTMAX); int
              <name>_num_classes;
      labels: with `labels`, `extern const char* const <name>_labels[<name>_num_classes];`
              defined in the source, the class names in output order.
    A model with several inputs or outputs gets a comment saying they are not described.
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes); its length is <name>_model_data_len.
      name: C identifier prefix, e.g. "digits_int8".
      arena: footprint()'s dict; when given, the header also defines
        `constexpr unsigned int <name>_tensor_arena_size` (its arena_bytes).
      labels: optional class names (str) in output order; UTF-8, escaped for C.
    Returns:
      (str, str): header text, source text.
    Raises:
      ValueError: name is not a C identifier; labels of another length than the output's
        last dimension, or labels for a model with several outputs.
      UserError: not a .tflite flatbuffer; an input or output quantized per channel.
    """
    _check_name(name)
    model = _model(tflite_bytes)
    data = bytes(tflite_bytes)
    subgraph = model.Subgraphs(0)
    single = subgraph.InputsLength() == 1 and subgraph.OutputsLength() == 1
    if single:
        io_header, io_source = _io_c_text(io_details(data), name, labels)
    elif labels is not None:
        raise ValueError(f"labels given for a model with {subgraph.OutputsLength()} outputs; "
                         f"they name the classes of a single output")
    else:
        io_header, io_source = (f"// {_io_counts(subgraph)}: tftool describes the input and "
                                f"output of single-input, single-output models only.\n\n"), ""
    guard = f"TFTOOL_{name.upper()}_MODEL_DATA_H_"
    what = (f"// The TensorFlow Lite flatbuffer of model '{name}' ({len(data)} bytes) as a C "
            f"array for\n// TensorFlow Lite Micro: tflite::GetModel({name}_model_data).\n"
            f"// Generated by tftool (tftool/export/micro.py) from the .tflite file; do not "
            f"edit, export again.\n// C++ (constexpr, <cstdint>), as TFLM itself is.\n")
    arena_line = ""
    if arena is not None:  # footprint()'s measurement: ship this as the tensor arena
        arena_line = (f"// Tensor arena for tflite::MicroInterpreter, measured by tftool in the "
                      f"TFLM interpreter:\n// smallest working {arena['arena_smallest_bytes']} "
                      f"B + {MARGIN:.0%} margin, rounded up to {ARENA_ROUNDING} B.\n"
                      f"constexpr unsigned int {name}_tensor_arena_size = "
                      f"{arena['arena_bytes']};\n\n")
    header = (f"{what}#ifndef {guard}\n#define {guard}\n\n"
              + ("#include <cstdint>\n\n" if single else "") +
              f"extern const unsigned char {name}_model_data[];\n"
              f"extern const unsigned int {name}_model_data_len;\n\n{arena_line}{io_header}"
              f"#endif  // {guard}\n")
    lines = []
    for start in range(0, len(data), _BYTES_PER_LINE):
        chunk = data[start:start + _BYTES_PER_LINE]
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    source = (f"{what}#include \"{name}_model_data.h\"\n\n"
              f"// 16-byte aligned: TFLM reads weights and tensor data in place.\n"
              f"alignas(16) const unsigned char {name}_model_data[] = {{\n"
              + "\n".join(lines) +
              f"\n}};\n\nconst unsigned int {name}_model_data_len = {len(data)};\n"
              + io_source)
    return header, source


def _c_float(value):
    """A float32 as the shortest C++ float literal that reads back to the same float32."""
    return f"{str(np.float32(value))}f"  # str: format() would print the float64 digits


def _c_string(text):
    """A C string literal of `text`'s UTF-8 bytes: printable ASCII as is; quote, backslash
    and '?' (trigraphs) escaped; every other byte as a 3-digit octal escape (a hex escape
    would swallow the hex digits after it)."""
    out = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _io_c_text(details, name, labels):
    """(header lines, source lines) describing the model's input and output; see c_source."""
    inp, out = details["input"], details["output"]
    integer_in = np.issubdtype(np.dtype(inp["dtype"]), np.integer)
    shape = inp["shape"]
    channels = inp["channels"]
    color = {1: "grayscale", 3: "RGB"}.get(channels, f"{channels} channels")
    lines = [f"// Input tensor: {inp['dtype']} {shape}"
             + (", NHWC" if len(shape) == 4 else "") + f", {color}.\n// The model was "
             f"trained on x = pixel / 255 in [0, 1]"
             + (",\n// stored as q = round(x / scale) + zero_point.\n" if integer_in
                else ".\n")]
    if integer_in:
        info = np.iinfo(np.dtype(inp["dtype"]))
        lines.append(f"// From an 8-bit camera pixel (0..255): {inp['formula']}\n"
                     f"// (in general q = round(pixel / 255 / scale) + zero_point, clamped "
                     f"to {info.min}..{info.max}).\n")
    else:
        lines.append(f"// From an 8-bit camera pixel (0..255): {inp['formula']} (not "
                     f"quantized: scale and zero point 0).\n")
    if inp["dtype"] in _C_TYPES:
        lines.append(f"typedef {_C_TYPES[inp['dtype']]} {name}_input_t;\n")
    lines.append(f"constexpr char {name}_input_dtype[] = \"{inp['dtype']}\";\n"
                 f"constexpr int {name}_input_shape[] = "
                 f"{{{', '.join(str(d) for d in shape)}}};\n")
    if len(shape) == 4:
        lines.append(f"constexpr int {name}_input_batch = {shape[0]};\n"
                     f"constexpr int {name}_input_height = {shape[1]};\n"
                     f"constexpr int {name}_input_width = {shape[2]};\n")
    size = int(np.prod(shape)) if shape else 1
    try:
        nbytes = f"{size * np.dtype(inp['dtype']).itemsize}"
    except TypeError:  # a type numpy lacks
        nbytes = None
    lines.append(f"constexpr int {name}_input_channels = {channels};\n"
                 + (f"constexpr int {name}_input_bytes = {nbytes};\n" if nbytes else "")
                 + f"constexpr float {name}_input_scale = {_c_float(inp['scale'])};\n"
                 f"constexpr int {name}_input_zero_point = {inp['zero_point']};\n\n")
    kind = out["kind"]
    why = (f"the last op is {out['last_op']}" + ("" if kind != "logits" else ", not SOFTMAX"))
    value = ("value = (q - zero_point) * scale" if np.issubdtype(np.dtype(out["dtype"]),
                                                                  np.integer)
             else "not quantized: scale and zero point 0")
    lines.append(f"// Output tensor: {out['dtype']} {out['shape']}, {kind} ({why});\n"
                 f"// {value}.\n"
                 f"// The class is the index of the largest value"
                 + (f": {name}_labels[i] names output i.\n" if labels is not None else ".\n"))
    if out["dtype"] in _C_TYPES:
        lines.append(f"typedef {_C_TYPES[out['dtype']]} {name}_output_t;\n")
    lines.append(f"constexpr char {name}_output_dtype[] = \"{out['dtype']}\";\n"
                 f"constexpr float {name}_output_scale = {_c_float(out['scale'])};\n"
                 f"constexpr int {name}_output_zero_point = {out['zero_point']};\n"
                 f"constexpr char {name}_output_kind[] = \"{kind}\";\n"
                 f"constexpr bool {name}_output_is_probabilities = "
                 f"{'true' if kind == 'probabilities' else 'false'};\n"
                 f"constexpr int {name}_num_classes = {out['num_classes']};\n\n")
    if labels is None:
        return "".join(lines), ""
    labels = list(labels)
    if len(labels) != out["num_classes"]:
        raise ValueError(f"{len(labels)} labels for a model with {out['num_classes']} "
                         f"outputs")
    lines.append(f"// Class names in output order (defined in {name}_model_data.cc).\n"
                 f"extern const char* const {name}_labels[{name}_num_classes];\n\n")
    source = (f"\n// Class names in output order: {name}_labels[i] names output i.\n"
              f"const char* const {name}_labels[{name}_num_classes] = {{\n"
              + "".join(f"    {_c_string(label)},\n" for label in labels) + "};\n")
    return "".join(lines), source


def op_resolver_header(tflite_bytes, name):
    """`<name>_op_resolver.h`: a MicroMutableOpResolver sized and filled for exactly this model.

    Declares
      typedef tflite::MicroMutableOpResolver<N> <name>_op_resolver;
      inline TfLiteStatus <name>_register_ops(<name>_op_resolver& resolver);
    where N is the number of distinct ops and the function calls one Add<Op>() per op (e.g.
    AddConv2D, AddFullyConnected), returning the first status that is not kTfLiteOk. Needs
    TFLM's headers (tensorflow/lite/micro/micro_mutable_op_resolver.h) on the include path.
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes).
      name: C identifier prefix, e.g. "digits_int8".
    Returns:
      str: the header text.
    Raises:
      ValueError: name is not a C identifier.
      UserError: not a .tflite flatbuffer, or an op TFLM lacks (see `ops`).
    """
    _check_name(name)
    names = ops(tflite_bytes)
    guard = f"TFTOOL_{name.upper()}_OP_RESOLVER_H_"
    calls = "\n".join(f"  if ((status = resolver.{TFLM_OPS[op]}()) != kTfLiteOk) return status;"
                      for op in names)
    return (f"// The TensorFlow Lite Micro op resolver for model '{name}': exactly its "
            f"{len(names)} ops\n// ({', '.join(names)}), so the linker keeps only "
            f"these kernels.\n// Generated by tftool (tftool/export/micro.py); do not edit, "
            f"export again.\n"
            f"#ifndef {guard}\n#define {guard}\n\n"
            f"#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n\n"
            f"typedef tflite::MicroMutableOpResolver<{len(names)}> {name}_op_resolver;\n\n"
            f"// Registers the model's ops on `resolver`; kTfLiteOk, or the first failing "
            f"status.\n"
            f"inline TfLiteStatus {name}_register_ops({name}_op_resolver& resolver) {{\n"
            f"  TfLiteStatus status;\n{calls}\n  return kTfLiteOk;\n}}\n\n"
            f"#endif  // {guard}\n")


# The probe runs in a child process because the tflite_micro interpreter does not always fail
# cleanly on a too-small arena: with a few hundred bytes it segfaults (RecordingMicroAllocator
# ::Create returns null and the wrapper goes on), which would kill the caller. The child builds
# the interpreter with `arena_size`, invokes once on zeros of every input's dtype and shape,
# prints "ok" on stdout, and lets the recording allocator print its figures on stderr.
_PROBE = r"""
import sys
import numpy as np
from tflite_micro import runtime
path, arena_size, num_inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    model = f.read()
interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
for i in range(num_inputs):
    details = interpreter.get_input_details(i)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), i)
interpreter.invoke()
sys.stderr.flush()
interpreter.print_allocations()
print("ok", flush=True)
"""
_USED = re.compile(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes")


def _require_tflm():
    """Raises UserError unless the tflite-micro package (setup.cfg pins it) is importable."""
    try:
        import tflite_micro  # noqa: F401
    except ImportError as e:
        raise UserError(f"TensorFlow Lite Micro's Python package is missing ({e}); install "
                        f"tftool's dependencies again: pip install -e .") from e


class _Prober:
    """Runs TFLM on one model with given arena sizes, each in a fresh Python process."""

    def __init__(self, tflite_bytes):
        _require_tflm()
        model = _model(tflite_bytes)
        self.num_inputs = model.Subgraphs(0).InputsLength()
        self._dir = tempfile.TemporaryDirectory(prefix="tftool_micro_")
        self.path = os.path.join(self._dir.name, "model.tflite")
        with open(self.path, "wb") as f:
            f.write(bytes(tflite_bytes))
        self.probes = 0
        self.last_error = ""

    def close(self):
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __call__(self, arena_size):
        """(works: bool, used_bytes: int or None) for one arena size in bytes."""
        self.probes += 1
        try:
            result = subprocess.run(
                [sys.executable, "-c", _PROBE, self.path, str(arena_size), str(self.num_inputs)],
                capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"TensorFlow Lite Micro took over {PROBE_TIMEOUT_S} s to run the "
                            f"model once with a {arena_size}-byte arena; is the machine "
                            f"overloaded?") from None
        works = result.returncode == 0 and result.stdout.strip() == "ok"
        if not works:
            lines = [l for l in result.stderr.splitlines() if l.strip()]
            self.last_error = lines[-1] if lines else f"exit status {result.returncode}"
            return False, None
        used = _USED.search(result.stderr)
        return True, int(used.group(1)) if used else None


@functools.lru_cache(maxsize=16)
def _measure(tflite_bytes):
    """(smallest arena bytes, recorded used bytes, probes run); see `smallest_arena`.

    Cached per model (bytes): the figures depend only on the flatbuffer and the installed
    tflite-micro, and `footprint` after `smallest_arena` should not probe 10-20 times again.
    """
    ops(tflite_bytes)  # an op TFLM lacks would make every arena size fail: say so first
    with _Prober(tflite_bytes) as probe:
        # 1. A size that works: TFLM's own default guess (10x the model), at least 64 KiB,
        #    doubled until it works.
        hi = max(64 * 1024, 10 * len(tflite_bytes))
        while True:
            works, used = probe(hi)
            if works:
                break
            if hi >= MAX_ARENA_BYTES:
                raise UserError(f"TensorFlow Lite Micro cannot run this model with up to "
                                f"{MAX_ARENA_BYTES // 1024} KiB of arena ({probe.last_error})")
            hi = min(2 * hi, MAX_ARENA_BYTES)
        # 2. A size that fails: just below what the recording allocator used (it did hold that
        #    much at once), checked; 0 if it unexpectedly works.
        lo = 0
        if used and used - 1 < hi:
            if probe(used - 1)[0]:
                hi = used - 1
            else:
                lo = used - 1
                # 3. Gallop up from `used` (the smallest is usually a few % above it) so that
                #    the bisection range is small: +1/16, +1/8, +1/4, ... until one works.
                step = max(64, used // 16)
                while lo + step < hi:
                    if probe(lo + step)[0]:
                        hi = lo + step
                        break
                    lo += step
                    step *= 2
        # 4. Bisection on whole bytes: `lo` fails, `hi` works; at most log2(16 MiB) = 24 probes.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if probe(mid)[0]:
                hi = mid
            else:
                lo = mid
        return hi, used, probe.probes


def smallest_arena(tflite_bytes):
    """The smallest tensor arena, in bytes, with which TFLM allocates and invokes the model.

    Measured with the tflite-micro Python interpreter (`runtime.Interpreter.from_bytes(...,
    arena_size=n)`, reference kernels, RecordingMicroAllocator, 64-bit host): one invoke on
    zero inputs per candidate size, each in a fresh process. A size that works is found by
    doubling from max(64 KiB, 10x the model); then bisection on whole bytes between it and a
    size that fails (just under the recording allocator's used bytes). About 10-20 probes of
    ~0.3 s each; assumes, as TFLM's deterministic memory planner gives, that any larger arena
    works too. Cached per model bytes within the process.
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes) whose ops TFLM has.
    Returns:
      int: bytes; size 1 less fails. Not the figure to ship: use `arena_with_margin`.
    Raises:
      UserError: not a .tflite flatbuffer, an op TFLM lacks, or no arena up to
        MAX_ARENA_BYTES works (TFLM's last error line is quoted).
    """
    return _measure(bytes(tflite_bytes))[0]


def arena_with_margin(arena_bytes, margin=MARGIN, rounding=ARENA_ROUNDING):
    """The arena to ship: `arena_bytes` plus `margin`, rounded up to a multiple of `rounding`.

    Default: +10 %, rounded up to whole KiB (see MARGIN for why). Example: 3984 -> 5120.
    Args:
      arena_bytes: int, the measured smallest arena (`smallest_arena`), bytes.
      margin: fraction ≥ 0 added.
      rounding: int ≥ 1, bytes.
    Returns:
      int bytes.
    Raises:
      ValueError: a negative size or margin, or rounding < 1.
    """
    if arena_bytes < 0 or margin < 0 or rounding < 1:
        raise ValueError(f"arena_with_margin({arena_bytes}, margin={margin}, "
                         f"rounding={rounding}): need arena ≥ 0, margin ≥ 0, rounding ≥ 1")
    return int(math.ceil(arena_bytes * (1 + margin) / rounding)) * rounding


def arena_used_bytes(tflite_bytes, arena_size):
    """Bytes of the arena TFLM's RecordingMicroAllocator reports as used after one invoke.

    The same figure as MicroInterpreter::arena_used_bytes() (head + tail of the arena). The
    Python runtime does not return it, so it is read from the allocator's PrintAllocations()
    text ("Arena allocation total N bytes"). It is *smaller* than `smallest_arena` (the memory
    planner also needs scratch while it plans), so it is reported, not used for sizing.
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes).
      arena_size: int bytes to run with (must work).
    Returns:
      int bytes.
    Raises:
      UserError: the model does not run with `arena_size`, or TFLM printed no figure (a
        tflite-micro whose PrintAllocations format differs from the pinned one).
    """
    with _Prober(tflite_bytes) as probe:
        works, used = probe(arena_size)
        if not works:
            raise UserError(f"TensorFlow Lite Micro cannot run the model with a "
                            f"{arena_size}-byte arena ({probe.last_error})")
    if used is None:
        raise UserError("tflite-micro printed no 'Arena allocation total' line; is it the "
                        "version pinned in setup.cfg?")
    return used


def _tflm_run(interpreter, quantized):
    """int/float [N, ...] -> TFLM outputs [N, K], one image per invoke (batch 1 models)."""
    details = interpreter.get_input_details(0)
    shape = tuple(int(d) for d in details["shape"])
    outputs = []
    for image in quantized:
        interpreter.set_input(image.reshape(shape).astype(details["dtype"]), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)).reshape(-1))
    return np.stack(outputs)


def _batches(images, batch_size):
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
    else:
        yield from (np.asarray(batch) for batch in images)


def compare_with_litert(tflite_bytes, images, labels=None, use_xnnpack=True, batch_size=64):
    """Runs TFLM and LiteRT on the same inputs and compares their raw outputs.

    Inputs are quantized once, per the model's input tensor (q = round(x / scale + zp),
    clipped to the int8/uint8 range, as litert.Runner does), and the same integers go to both
    runtimes: TFLM (tflite-micro Python interpreter, reference kernels, one image per invoke)
    and LiteRT (ai_edge_litert Interpreter; XNNPACK unless use_xnnpack=False, i.e. what an
    app runs).
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes) with one input [1, H, W, C] and one output
        [1, K]; int8, uint8 or float32 I/O.
      images: float32 [N, H, W, C] in [0, 1], or already of the input tensor's dtype (then
        used as is); a numpy array, or an iterable of such batches (e.g. a streamed split).
      labels: optional int [N]: also return each runtime's top-1 accuracy.
      use_xnnpack: LiteRT with its default delegates (True) or reference kernels (False).
      batch_size: LiteRT batch size for an array input.
    Returns:
      dict: num_images (int); top1_agreement (fraction of images where both argmax agree);
      max_abs_diff_steps (int: max |TFLM - LiteRT| of the raw integer outputs, in quantization
      steps; None for float outputs); max_abs_diff (float: the same in dequantized units);
      with labels also tflm_accuracy and litert_accuracy.
    Raises:
      ValueError: images of another dtype than float32 or the input's, or a shape that does not
        match the input; labels of another length.
      UserError: not a .tflite flatbuffer, an op TFLM lacks, or TFLM cannot allocate it in
        MAX_ARENA_BYTES.
    """
    _require_tflm()
    from tflite_micro import runtime

    from tftool.litert import Runner

    ops(tflite_bytes)
    litert = Runner(model_content=bytes(tflite_bytes), use_xnnpack=use_xnnpack)
    try:
        # The largest arena we would ever ship: a comparison must not fail for arena size (the
        # pages are not touched beyond what TFLM uses). In-process: with an ample arena the
        # interpreter fails cleanly, unlike the tiny arenas _Prober tries.
        tflm = runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=MAX_ARENA_BYTES)
    except RuntimeError as e:
        raise UserError(f"TensorFlow Lite Micro cannot run this model ({e})") from e
    in_dtype = litert.input_details["dtype"]
    out = litert.output_details
    agree = count = 0
    max_diff = 0.0
    correct = {"tflm": 0, "litert": 0}
    for batch in _batches(images, batch_size):
        if tuple(batch.shape[1:]) != litert.input_shape:
            raise ValueError(f"images of shape {batch.shape[1:]}; the model takes "
                             f"{litert.input_shape}")
        if batch.dtype == in_dtype:
            quantized = batch
        elif batch.dtype == np.float32:
            quantized = litert.quantize_input(batch)
        else:
            raise ValueError(f"images of dtype {batch.dtype}: pass float32 in [0, 1] or "
                             f"{np.dtype(in_dtype).name} quantized for the model")
        litert.resize(len(quantized))
        litert.interpreter.set_tensor(litert.input_details["index"], quantized)
        litert.invoke()
        raw_litert = litert.interpreter.get_tensor(out["index"]).reshape(len(quantized), -1)
        raw_tflm = _tflm_run(tflm, quantized)
        top_litert, top_tflm = raw_litert.argmax(1), raw_tflm.argmax(1)
        agree += int((top_litert == top_tflm).sum())
        diff = np.abs(raw_tflm.astype(np.float64) - raw_litert.astype(np.float64))
        max_diff = max(max_diff, float(diff.max()))
        if labels is not None:
            y = np.asarray(labels)[count:count + len(quantized)]
            correct["tflm"] += int((top_tflm == y).sum())
            correct["litert"] += int((top_litert == y).sum())
        count += len(quantized)
    if count == 0:
        raise ValueError("no images given")
    if labels is not None and len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} images")
    integer = np.issubdtype(out["dtype"], np.integer)
    scale = out["quantization"][0] if integer else 1.0
    result = {"num_images": count, "top1_agreement": agree / count,
              "max_abs_diff_steps": int(max_diff) if integer else None,
              "max_abs_diff": max_diff * scale}
    if labels is not None:
        result["tflm_accuracy"] = correct["tflm"] / count
        result["litert_accuracy"] = correct["litert"] / count
    return result


def footprint(tflite_bytes, micro_flash_kb=None, micro_ram_kb=None, name="model"):
    """The microcontroller row of the report for one variant, measured.

    flash_bytes is the model array only (the TFLM runtime and kernels' code, typically tens of
    KiB, is not counted); arena_bytes is `arena_with_margin(smallest_arena(...))`, the figure
    to ship as kTensorArenaSize, checked to run; RAM is compared with arena_bytes only (the
    application's own stack and buffers are not counted).
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes).
      micro_flash_kb / micro_ram_kb: budgets in KiB (1024 bytes); None = no budget.
      name: the variant's name, used in the message.
    Returns:
      dict: flash_bytes, arena_bytes, arena_smallest_bytes, arena_used_bytes (recording
      allocator), ops (sorted BuiltinOperator names), fits (bool: within both budgets),
      message (None when it fits, else one line naming the figures and budgets).
    Raises:
      ValueError: a negative budget.
      UserError: see `smallest_arena`.
    """
    for flag, value in (("micro_flash_kb", micro_flash_kb), ("micro_ram_kb", micro_ram_kb)):
        if value is not None and value < 0:
            raise ValueError(f"{flag}={value}: a budget is KiB ≥ 0, or None for no budget")
    names = ops(tflite_bytes)
    smallest, _, _ = _measure(bytes(tflite_bytes))
    arena = arena_with_margin(smallest)
    used = arena_used_bytes(tflite_bytes, arena)  # also checks that the shipped size runs
    flash = len(tflite_bytes)
    over = []
    if micro_flash_kb is not None and flash > micro_flash_kb * 1024:
        over.append(f"model {flash / 1024:.1f} KiB > flash budget {micro_flash_kb} KiB")
    if micro_ram_kb is not None and arena > micro_ram_kb * 1024:
        over.append(f"tensor arena {arena / 1024:.1f} KiB (smallest {smallest} B "
                    f"+ {MARGIN:.0%}) > RAM budget {micro_ram_kb} KiB")
    message = f"{name} does not fit the microcontroller: {'; '.join(over)}" if over else None
    return {"flash_bytes": flash, "arena_bytes": arena, "arena_smallest_bytes": smallest,
            "arena_used_bytes": used, "ops": names, "fits": not over, "message": message}
