"""ONNX beside LiteRT: the Keras model as .onnx bytes (float32 and int8) and an ONNX Runtime runner.

What a caller gets is the ONNX twin of tftool's TFLite exports (export/convert.py):
  - one input named "image": float32 [N, H, W, C] pixel/255 in [0, 1], the batch dimension
    dynamic, H, W and C the Keras model's own (no in-model RGB -> gray: a 1-channel model keeps
    its 1-channel input; Runner replicates a 1-channel image for a 3-channel model);
  - one output named "probabilities": float32 [N, K], a softmax, summing to 1.
The int8 file keeps the float32 input and output: QDQ format (QuantizeLinear/DequantizeLinear
pairs around each quantized op, which ONNX Runtime fuses into integer kernels), calibrated on
the same `data.representative_dataset` images as the TFLite int8 export.

Runner is the ONNX Runtime counterpart of litert.Runner for evaluation and the benchmark: it
takes uint8 pixels [N, H, W, C] 0..255 as an app feeds them; `onnx_latency` times it as
benchmark/timing.tflite_latency times LiteRT (TFLite benchmark_model's warm-up and run loop).

The packages are an optional extra, `pip install 'tftool[onnx]'` (tf2onnx for the conversion,
onnxruntime for quantization and running): `available()` says whether they import, `require()`
raises the one-line UserError an entry point prints.

Over 400 lines because the conversion and the runner are the two sides of one file contract
(INPUT_NAME, OUTPUT_NAME, the optional extra), and over a third of its lines are the
docstrings giving each ONNX Runtime choice its reason.

Docs followed:
  tf2onnx: https://github.com/onnx/tensorflow-onnx (tf2onnx.convert.from_function).
  ONNX Runtime quantization:
    https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
    (quant_pre_process, quantize_static, QDQ, data types) and quantize_static's docstring.
  ONNX Runtime threading: https://onnxruntime.ai/docs/performance/tune-performance/threading.html
"""
import os
import tempfile

import numpy as np

from tftool import UserError, first_line, litert

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
# QuantizeLinear per axis (per-channel weights) exists from ONNX opset 13.
MIN_INT8_OPSET = 13
REQUIRE_MESSAGE = ("ONNX export needs the onnx extra: pip install 'tftool[onnx]' "
                   "(make install installs it)")
REEXPORT = "export it again with tftool-export --onnx"


def available():
    """True if tf2onnx and onnxruntime both import (the `tftool[onnx]` extra is installed).

    Any import failure counts as unavailable, not only a missing package: a tf2onnx or onnx
    built against another protobuf fails with TypeError/AttributeError at import time.
    """
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except Exception:  # noqa: BLE001  (see docstring)
        return False
    return True


def versions():
    """{distribution: version or None} of the ONNX packages (for model cards and rows)."""
    from importlib import metadata

    found = {}
    for dist in ("tf2onnx", "onnx", "onnxruntime"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def require():
    """Raises UserError(REQUIRE_MESSAGE) unless tf2onnx and onnxruntime import."""
    if not available():
        raise UserError(REQUIRE_MESSAGE)


def _onnxruntime():
    try:
        import onnxruntime
    except Exception as e:  # noqa: BLE001  (as available())
        raise UserError(REQUIRE_MESSAGE) from e
    return onnxruntime


def _check_loads(content, what):
    """Builds an InferenceSession on `content` and runs it once on zeros; returns (H, W, C, K).

    tf2onnx converts with continue_on_error: an op it cannot map stays in the graph as a TF
    op and the file is written anyway (it only logs an error), so loading it is the check.
    Raises RuntimeError naming `what` if ONNX Runtime refuses the model or it gives no [1, K].
    """
    ort = _onnxruntime()
    try:
        session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
        shape = [int(d) for d in session.get_inputs()[0].shape[1:]]
        out = session.run(None, {session.get_inputs()[0].name: np.zeros([1, *shape],
                                                                         np.float32)})[0]
    except Exception as e:  # noqa: BLE001  (ORT's pybind errors share no useful base class)
        raise RuntimeError(f"{what} does not run in onnxruntime: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if out.ndim != 2 or out.shape[0] != 1:
        raise RuntimeError(f"{what} outputs shape {list(out.shape)} for one image, not [1, K]")
    return (*shape, int(out.shape[1]))


def to_onnx_float32(model, opset=None):
    """Converts a tf_keras logits model to float32 ONNX bytes that output probabilities.

    The softmax is added the way export/convert.to_tflite adds it: the converted graph is
    convert.serving_function(model, rgb_input=False), a tf.function with the fixed input
    signature TensorSpec([None, H, W, C], float32, name="image") that calls the model
    (training=False) and returns {"probabilities": tf.nn.softmax(logits)}. tf2onnx's
    from_function freezes it and names the ONNX input and output after the signature's name
    and the returned dict's key. (tf2onnx.convert.from_keras would convert the bare model,
    whose output is the logits layer's name.)

    Args:
      model: tf_keras model, float32 [N, H, W, C] in [0, 1] -> float32 [N, K] logits, with a
        static H, W, C.
      opset: ONNX opset (int) or None for tf2onnx's default (15 in tf2onnx 1.17). to_onnx_int8
        needs ≥ 13 (per-axis QuantizeLinear).
    Returns:
      bytes of a serialized ONNX ModelProto: input "image" float32 [N, H, W, C] in [0, 1]
      (N dynamic), output "probabilities" float32 [N, K] (softmax, each row sums to 1).
    Raises:
      UserError: tf2onnx or onnxruntime is not installed (REQUIRE_MESSAGE).
      ValueError: the model's input is not [N, H, W, C] with static H, W, C.
      RuntimeError: the converted model does not load or run in onnxruntime (an op tf2onnx
        could not convert), naming the model and the opset.
    """
    require()
    import tf2onnx

    from tftool.export import convert

    shape = tuple(model.input_shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(f"{model.name}: input shape {shape} is not [N, H, W, C] with static "
                         f"H, W, C")
    serve = convert.serving_function(model, rgb_input=False, output=OUTPUT_NAME)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature,
                                             opset=opset)
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    if names != ([INPUT_NAME], [OUTPUT_NAME]):  # tf2onnx's naming is what the Runner relies on
        raise RuntimeError(f"{model.name}: tf2onnx named the inputs/outputs {names}, expected "
                           f"([{INPUT_NAME!r}], [{OUTPUT_NAME!r}])")
    content = proto.SerializeToString()
    _check_loads(content, f"{model.name} converted to ONNX (opset {opset or 'default'})")
    return content


class _Calibration:
    """onnxruntime CalibrationDataReader over a TFLite-style representative_dataset callable:
    each get_next() is {input name: float32 [1, H, W, C]}, None when the images run out.
    1-channel images are replicated for a 3-channel input (as convert._rgb_representative)."""

    def __init__(self, representative_dataset, input_name, input_shape):
        self.input_name, self.input_shape = input_name, tuple(input_shape)
        self._samples = iter(representative_dataset())
        self.count = 0

    def get_next(self):
        sample = next(self._samples, None)
        if sample is None:
            return None
        image = np.asarray(sample[0], np.float32)
        if image.shape[-1] == 1 and self.input_shape[-1] != 1:
            image = np.repeat(image, self.input_shape[-1], axis=-1)
        if image.shape[1:] != self.input_shape:
            raise ValueError(f"representative_dataset yields images of shape "
                             f"{list(image.shape)}; the model takes [N, "
                             f"{', '.join(map(str, self.input_shape))}]")
        self.count += 1
        return {self.input_name: image}

    def __iter__(self):  # CalibrationDataReader's iterator protocol
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


# Ops that only move pixels: their outputs hold the input's values (and its [0, 1] range).
_LAYOUT_OPS = ("Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten")


def _pixel_tensors(model):
    """The graph input's name and every tensor that layout ops derive from it alone.

    tf2onnx's graph starts with NHWC -> NCHW (a Transpose, or a Reshape when C == 1), and the
    quantizer puts the first QuantizeLinear after it, on that op's output, not on the input:
    an override of the input's range alone would be silently unused (measured).
    """
    names = {model.graph.input[0].name}
    initializers = {i.name for i in model.graph.initializer}
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        data = [i for i in node.input if i and i not in initializers]
        if node.op_type in _LAYOUT_OPS and data and data[0] in names:
            names.update(node.output)
    return sorted(names)


def to_onnx_int8(float_onnx_bytes, representative_dataset, per_channel=True, *,
                 reduce_range=False):
    """Static post-training int8 quantization of a to_onnx_float32 model, in QDQ format.

    Steps (ONNX Runtime's quantization guide):
      1. quant_pre_process: graph optimization and ONNX shape inference, which the guide
         recommends ("a tensor with unknown shape can not be quantized"); it also folds what
         tf2onnx left unfused before ranges are calibrated. Its symbolic shape inference is
         skipped (it needs sympy; it serves transformers' symbolic dimensions).
      2. quantize_static, QuantFormat.QDQ (the recommended format since ORT 1.11; the CPU
         kernels are optimized for it), MinMax calibration on `representative_dataset`:
         activations QUInt8 (asymmetric), weights QInt8 (symmetric). quantize_static's
         guidance for x86/x64 CPUs, with or without VNNI, is exactly QUInt8 activations with
         QInt8 weights (U8S8: MLAS's x86 int8 GEMMs multiply unsigned by signed bytes,
         VPMADDUBSW / VPDPBUSD); signed QInt8 activations are its advice for ARM.
    Choices on top of the defaults, each to match the TFLite int8 export:
      - the input's range is pinned to [0, 1] (TensorQuantOverrides rmin 0, rmax 1): uint8
        scale 1/255, zero point 0, so a pixel p fed as p/255 is quantized to p exactly,
        whatever range the calibration images span (TFLite int8 pins it with a FakeQuant op);
      - the final Softmax is not quantized: its input is the dequantized int8 logits and its
        output float32 probabilities that sum to 1 (convert.float_softmax_tail does the same
        for TFLite; a uint8 softmax output is off by up to K/510 in its sum).

    Args:
      float_onnx_bytes: bytes from to_onnx_float32 (opset ≥ 13).
      representative_dataset: callable yielding [float32 [1, H, W, C] in [0, 1]] lists
        (data.representative_dataset; its images calibrate the activation ranges). 1-channel
        images are replicated for a 3-channel input.
      per_channel: one weight scale per output channel (True, as TFLite int8) or per tensor.
      reduce_range: True: 7-bit weights, quantize_static's advice for x86 CPUs *without*
        VNNI, where VPMADDUBSW's 16-bit pair sums can saturate. False (default): full 8-bit
        weights as TFLite's int8, for x86 with VNNI (e.g. the AVX512-VNNI AMD EPYC the
        tests ran on) and ARM.
    Returns:
      bytes of the QDQ ONNX model: input "image" float32 [N, H, W, C] in [0, 1], output
      "probabilities" float32 [N, K].
    Raises:
      UserError: onnxruntime or tf2onnx is not installed.
      ValueError: float_onnx_bytes is not an ONNX model with one input and one output, its
        opset is below 13, or representative_dataset yields nothing or images of another
        shape.
    """
    require()
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    try:
        model = onnx.load_from_string(float_onnx_bytes)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends)
        raise ValueError(f"float_onnx_bytes is not an ONNX model ({e})") from e
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise ValueError("float_onnx_bytes must have one input and one output (to_onnx_float32)")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_INT8_OPSET:
        raise ValueError(f"float ONNX opset {opset}: int8 needs opset ≥ {MIN_INT8_OPSET}; "
                         f"convert with to_onnx_float32(model, opset={MIN_INT8_OPSET}) or later")
    input_name = model.graph.input[0].name
    dims = model.graph.input[0].type.tensor_type.shape.dim
    input_shape = tuple(int(d.dim_value) for d in dims[1:])
    # Every Softmax node: the model's last op (to_onnx_float32's tf.nn.softmax).
    softmax_nodes = [n.name for n in model.graph.node if n.op_type == "Softmax"]

    reader = _Calibration(representative_dataset, input_name, input_shape)
    with tempfile.TemporaryDirectory(prefix="tftool_onnx_") as tmp:
        float_path, pre_path, int8_path = (os.path.join(tmp, n) for n in
                                           ("float.onnx", "pre.onnx", "int8.onnx"))
        with open(float_path, "wb") as f:
            f.write(float_onnx_bytes)
        # Symbolic shape inference (for transformers' symbolic dims, per its docstring) needs
        # sympy, which the extra does not install; ONNX shape inference covers a CNN whose only
        # unknown dimension is the batch.
        quant_pre_process(float_path, pre_path, skip_symbolic_shape=True)
        pixel_range = [{"rmin": np.float32(0.0), "rmax": np.float32(1.0)}]
        overrides = {name: pixel_range for name in _pixel_tensors(onnx.load(pre_path))}
        quantize_static(
            pre_path, int8_path, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
            reduce_range=reduce_range, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=softmax_nodes, extra_options={"TensorQuantOverrides": overrides})
        if reader.count == 0:
            raise ValueError("representative_dataset yielded no images to calibrate on")
        with open(int8_path, "rb") as f:
            content = f.read()
    _check_loads(content, "the int8 ONNX model")
    return content


class Runner:
    """Runs an ONNX classifier in ONNX Runtime's CPU execution provider on uint8 pixels.

    The counterpart of litert.Runner for evaluate.evaluate (via tflite_scorer: the same
    __call__, input_shape and outputs_probabilities) and the benchmark (set_input + invoke,
    timed by onnx_latency). The model's one input must be float32 [N, H, W, C] in [0, 1]
    with static H, W, C (to_onnx_float32 / to_onnx_int8).

    Threads (ONNX Runtime's threading guide): intra_op_num_threads = num_threads (None or 0:
    ORT's default, one per physical core), inter_op_num_threads = 1 with sequential execution:
    a classifier is a chain of ops, so only intra-op threads help, as LiteRT's num_threads.

    Args:
      model_path / model_content: the .onnx file or its bytes (one of them).
      num_threads: CPU threads for the ops (None: the runtime's default).
    Raises:
      UserError: the file is missing, truncated or not an ONNX model ONNX Runtime can run,
        or its input is not float32 with static H, W, C; one line naming the file and the fix.
        onnxruntime not installed: REQUIRE_MESSAGE.
      ValueError: neither or both of model_path and model_content.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=None):
        if (model_path is None) == (model_content is None):
            raise ValueError("give one of model_path and model_content")
        ort = _onnxruntime()
        what = model_path or "model bytes"
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or 0)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if model_path is not None and not os.path.isfile(model_path):
            raise UserError(f"{model_path} does not exist; {REEXPORT}")
        try:
            self.session = ort.InferenceSession(
                model_path if model_path is not None else bytes(model_content), options,
                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  (InvalidProtobuf, Fail, InvalidGraph, ...)
            raise UserError(f"{what} is not a valid ONNX model ({first_line(e)}); "
                            f"{REEXPORT}") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"{what} has {len(inputs)} inputs and {len(outputs)} outputs, "
                            f"not one image and one score tensor; {REEXPORT}")
        self._input, self._output = inputs[0], outputs[0]
        dims = self._input.shape
        if (self._input.type != "tensor(float)" or len(dims) != 4
                or not all(isinstance(d, int) and d > 0 for d in dims[1:])):
            raise UserError(f"{what} takes {self._input.type} {dims}, not float32 "
                            f"[N, H, W, C] with fixed H, W, C; {REEXPORT}")
        self.num_threads = num_threads
        self.input_name, self.output_name = self._input.name, self._output.name
        self._binding = None
        self.batch_size = None

    @property
    def input_shape(self):
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self._input.shape[1:])

    @property
    def input_dtype(self):
        """numpy dtype of the input tensor: always np.float32 (pixel/255)."""
        return np.float32

    @property
    def outputs_probabilities(self):
        """True if the model's output is named "probabilities" (softmax scores); False: logits."""
        return self.output_name == OUTPUT_NAME

    def pixels_to_input(self, pixels):
        """uint8 pixels [N, H, W, C] 0..255 -> float32 pixel/255 in [0, 1]; a 1-channel image
        is replicated for a 3-channel model (R = G = B).

        Raises:
          ValueError: pixels are not uint8 (float images: use litert.to_pixels), not rank 4,
            not the model's H x W, or C is neither the model's channels nor 1.
        """
        pixels = litert.checked_pixels(pixels, self.input_shape)
        return np.ascontiguousarray(pixels, np.float32) / np.float32(255.0)

    def set_input(self, pixels):
        """Converts the batch (pixels_to_input) and binds it as the session's input, so that
        invoke() runs the model only: no conversion, no copy of the input (IOBinding keeps a
        reference to the array), as LiteRT's invoke runs on its input tensor."""
        values = self.pixels_to_input(pixels)
        self._values = values  # the binding points into this array: keep it alive
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input(self.input_name, values)
        self._binding.bind_output(self.output_name)  # ORT allocates it on the CPU
        self.batch_size = len(values)

    def invoke(self):
        """Runs the model on the batch of the last set_input. Raises ValueError without one."""
        if self._binding is None:
            raise ValueError("call set_input(pixels) before invoke()")
        self.session.run_with_iobinding(self._binding)

    def output(self):
        """float32 [N, K] of the last invoke."""
        return np.asarray(self._binding.copy_outputs_to_cpu()[0], np.float32)

    def __call__(self, pixels, batch_size=64):
        """uint8 pixels [N, H, W, C] 0..255 -> float32 [N, K] probabilities (or logits), run in
        batches of `batch_size`. Raises ValueError as pixels_to_input."""
        pixels = np.asarray(pixels)
        outputs = []
        for start in range(0, len(pixels), batch_size):
            values = self.pixels_to_input(pixels[start:start + batch_size])
            out = self.session.run([self.output_name], {self.input_name: values})[0]
            outputs.append(np.asarray(out, np.float32))
        k = int(self._output.shape[-1]) if isinstance(self._output.shape[-1], int) else 0
        return np.concatenate(outputs) if outputs else np.zeros((0, k), np.float32)


def onnx_latency(runner, batch_size=1, **timing):
    """Latency of `runner.invoke()` (Runner) on a fixed uint8 input batch, as
    timing.tflite_latency measures a litert.Runner: the same seeded input
    (timing.fixed_input, rounded to pixels), warm-up and run loop (timing.time_calls).

    Args:
      runner: a Runner.
      batch_size: images per call.
      timing: keyword arguments of timing.time_calls (min_runs, min_seconds, warmup_runs,
        warmup_seconds).
    Returns: timing.latency_stats's dict (latency_ms_p50/p90/p99/mean in ms per batch,
      throughput_ips, timed_runs, ...).
    """
    from tftool.benchmark import timing as timing_lib

    runner.set_input(litert.to_pixels(timing_lib.fixed_input(batch_size, runner.input_shape)))
    return timing_lib.latency_stats(timing_lib.time_calls(runner.invoke, **timing), batch_size)
