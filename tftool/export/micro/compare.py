"""TFLM against LiteRT on the same quantized images: compare_with_litert (top-1 agreement, the
largest output difference, each runtime's accuracy).
"""
import numpy as np

from tftool import UserError
from tftool.export.micro.arena import MAX_ARENA_BYTES, _require_tflm
from tftool.export.micro.model import ops


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
