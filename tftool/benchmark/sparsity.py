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
    from tftool.litert import Runner

    interpreter = Runner(model_path=model_path, model_content=model_content).interpreter
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = internals.ops_details(interpreter)
    producer = {out: op for op in ops for out in op["outputs"]}
    result = []
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
        result.append({"op": op["op_name"], "tensor": tensors[index]["name"],
                       "zeros": int(np.sum(values == 0)), "size": int(values.size)})
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
