"""Sparsity of a .tflite file, read from the weight tensors in its flatbuffer.

This is what the pruned model ships with: the fraction of weights that are exactly zero in the
kernels of the prunable ops (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), after conversion,
batch-norm folding and quantization. An int8 weight is zero exactly when the float weight was
zero, because TFLite quantizes weights symmetrically (zero point 0).
"""
import numpy as np

from tftool import internals


# Ops whose input 1 is a kernel that magnitude pruning sparsifies.
KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Output tensor name prefix of the RGB -> gray 1x1 conv that export.convert adds in front of a
# 1-channel model: fixed weights, no Keras layer, nothing pruning could sparsify; left out.
# Equals convert.GRAY_OP_NAME (not imported: that would load TensorFlow here).
EXPORT_ADDED_OP_PREFIX = "rgb_to_gray"


# Axis of each kernel op's stored weight tensor that holds the input channels (the axis the
# m:n groups run along) and the one that holds the output channels (the per-channel
# quantization axis): CONV_2D [O, H, W, I], FULLY_CONNECTED [O, I], DEPTHWISE_CONV_2D
# [1, H, W, O] (one input channel per output channel: no input-channel axis, no m:n pattern).
INPUT_AXIS = {"CONV_2D": -1, "FULLY_CONNECTED": -1, "DEPTHWISE_CONV_2D": None}
OUTPUT_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": -1}


def _kernel_tensors(model_path, model_content):
    """Yields (op name, tensor name, stored numpy values) for every stored kernel."""
    from tftool.litert import Runner

    interpreter = Runner(model_path=model_path, model_content=model_content).interpreter
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = internals.ops_details(interpreter)
    producer = {out: op for op in ops for out in op["outputs"]}
    for op in ops:
        if op["op_name"] not in KERNEL_OPS or len(op["inputs"]) < 2:
            continue
        if tensors[op["outputs"][0]]["name"].startswith(EXPORT_ADDED_OP_PREFIX):
            continue
        index = op["inputs"][1]
        source = producer.get(index)
        if source is not None and source["op_name"] == "DEQUANTIZE":
            index = source["inputs"][0]
        elif source is not None:
            continue  # a kernel computed at run time is no stored weight
        try:
            values = interpreter.get_tensor(index)
        except ValueError:
            continue  # no readable buffer (e.g. a sparse-encoded tensor)
        yield op["op_name"], tensors[index]["name"], values


def kernel_sparsity(model_path=None, model_content=None):
    """Fraction of zero weights in each kernel of a .tflite model.

    A float16 model stores each kernel as float16 behind a DEQUANTIZE op; the stored float16
    tensor is the one measured.

    Args:
      model_path / model_content: the .tflite file or its bytes (one of them).
    Returns:
      list of {"op": op name, "tensor": tensor name, "zeros": int, "size": int}, one per
      kernel tensor, in op order (names can repeat in QAT models, so not a dict).
    Raises:
      UserError: not a valid .tflite model (litert.Runner's check).
    """
    return [{"op": op, "tensor": name, "zeros": int(np.sum(values == 0)),
             "size": int(values.size)}
            for op, name, values in _kernel_tensors(model_path, model_content)]


def kernel_patterns(model_path=None, model_content=None, m=2, n=4):
    """Distinct stored values and the m:n pattern of each kernel of a .tflite model.

    What clustering and 2:4 pruning promise, read from what ships: an int8 kernel holds the
    quantized values (int8 is per-channel for CONV_2D/DEPTHWISE_CONV_2D, so a kernel clustered
    to k centroids holds ≤ k values per output channel but may hold more over the whole
    tensor); a float model holds the floats.

    Args:
      model_path / model_content: the .tflite file or its bytes (one of them).
      m, n: the pattern checked, m zeros in every n consecutive input-channel weights
        (prune.is_m_by_n along INPUT_AXIS: the last axis of CONV_2D [O, H, W, I] and
        FULLY_CONNECTED [O, I]).
    Returns:
      list, in op order, of {"op", "tensor", "shape": tuple, "unique": int (whole tensor),
      "unique_per_channel": int (largest count over output channels, OUTPUT_AXIS),
      "m_by_n": bool, or None where no m:n pattern can apply: DEPTHWISE_CONV_2D (no
      input-channel axis) or an input-channel count that is not a multiple of n (a first
      conv on 1- or 3-channel images; tfmot would pad the group, trivially "passing")}.
    Raises:
      UserError: not a valid .tflite model. ValueError: not 0 < m < n.
    """
    from tftool.optimize.prune import is_m_by_n

    result = []
    for op, name, values in _kernel_tensors(model_path, model_content):
        per_channel = np.moveaxis(values, OUTPUT_AXIS[op], 0).reshape(values.shape[
            OUTPUT_AXIS[op]], -1)
        axis = INPUT_AXIS[op]
        result.append({
            "op": op, "tensor": name, "shape": tuple(int(d) for d in values.shape),
            "unique": int(len(np.unique(values))),
            "unique_per_channel": int(max(len(np.unique(row)) for row in per_channel)),
            "m_by_n": (None if axis is None or values.shape[axis] % n else
                       is_m_by_n(values, m, n, axis=axis)),
        })
    return result


def tflite_sparsity(model_path=None, model_content=None, min_sparsity=0.0, kernels=None):
    """Fraction of zero weights over the kernels of a .tflite model, weighted by size.

    Args:
      model_path / model_content: the .tflite file or its bytes (one of them).
      min_sparsity: count only kernels at least this sparse (e.g. 0.5 to measure the pruned
        layers alone, leaving out the layers pruning skipped, whose kernels have ~0 zeros).
      kernels: kernel_sparsity's result, when the caller has it (the file is not read again).
    Returns:
      float in [0, 1]; 0.0 for a model without kernels.
    """
    zeros = total = 0
    if kernels is None:
        kernels = kernel_sparsity(model_path, model_content)
    for kernel in kernels:
        z, n = kernel["zeros"], kernel["size"]
        if n and z / n >= min_sparsity:
            zeros += z
            total += n
    return zeros / total if total else 0.0
