"""The model's operators, read from the .tflite flatbuffer, checked against the ops TensorFlow
Lite Micro has kernels for (TFLM_OPS): model_ops, ops.
"""
from tftool import UserError

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
