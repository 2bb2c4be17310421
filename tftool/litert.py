"""A .tflite model as a Python callable, on `ai_edge_litert`'s Interpreter, fed as an app feeds it.

The callable takes uint8 pixels [N, H, W, C] 0..255 at the model's input size, as a camera
frame or decoded image gives them, and converts them per the model's own input tensor:
  uint8   as is (tftool's int8/qat_int8 exports: scale 1/255, zero point 0),
  int8    q = round(pixel / 255 / scale) + zero_point, clipped (int8-input exports, old files),
  int16   the same with int16 limits (int16x8 exports with int16 input),
  float32 pixel / 255, i.e. [0, 1] (float exports; MediaPipe's NormalizationOptions mean 0,
          std 255 does the same).
A 1-channel image given to a 3-channel model is replicated to RGB (R = G = B), as an app feeding
the RGB frame of a gray image would. It returns float32 [N, K] of what the model outputs
(probabilities or logits; see Runner.outputs_probabilities), dequantized. Callers holding float
images in [0, 1] for a lower-level comparison can use Runner.quantize_input.

Pixels from float images: tftool.data gives float32 [0, 1] at the model size (bilinear,
antialiased resize of uint8, then / 255); `to_pixels` rounds them back to uint8. For images
not resized (the data set's native size) that is exact; otherwise it is what an app resizing
with `tf.cast(tf.round(tf.image.resize(x, size, antialias=True)), tf.uint8)` feeds.
"""
import numpy as np

from tftool import UserError

SIGNATURE_KEY = "serving_default"


def to_pixels(images):
    """float [N, H, W, C] in [0, 1] -> uint8 pixels round(255 · x), clipped to 0..255."""
    return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def checked_pixels(pixels, input_shape):
    """uint8 pixels [N, H, W, C] 0..255 checked against a model's one-image `input_shape`
    (H, W, C), a 1-channel image replicated to the model's C channels (R = G = B). Returns
    uint8 [N, H, W, C]. The check of Runner.pixels_to_input here and in onnx_runtime.

    Raises:
      ValueError: pixels are not uint8 (float images: use to_pixels), not rank 4, not the
        model's H x W, or C is neither the model's channels nor 1.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 0..255, got {pixels.dtype}; convert float "
                         f"[0, 1] images with litert.to_pixels")
    h, w, channels = input_shape
    if pixels.ndim != 4 or pixels.shape[1:3] != (h, w):
        raise ValueError(f"pixels must be [N, {h}, {w}, C], got {list(pixels.shape)}")
    if pixels.shape[-1] != channels:
        if pixels.shape[-1] != 1:
            raise ValueError(f"the model takes {channels} channel(s); got "
                             f"{pixels.shape[-1]} (1-channel images are replicated)")
        pixels = np.repeat(pixels, channels, axis=-1)
    return pixels


class Runner:
    """Runs a TFLite model's `serving_default` signature on uint8 pixels.

    Old files without a signature run on their first input and output tensor.

    Args:
      model_path / model_content: the .tflite file or its bytes (one of them).
      num_threads: CPU threads for the interpreter (None: the runtime's default).
      use_xnnpack: False builds the interpreter without its default delegates
        (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), i.e. TFLite's reference kernels.
    Raises:
      UserError: the file is missing, truncated or not a TFLite flatbuffer.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=None, use_xnnpack=True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kwargs = {"num_threads": num_threads}
        if not use_xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        try:
            self.interpreter = Interpreter(model_path=model_path, model_content=model_content,
                                           **kwargs)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            what = model_path or "model bytes"
            raise UserError(f"{what} is not a valid .tflite model ({str(e).splitlines()[0]}); "
                            f"export it again with tftool-export") from e
        self.num_threads = num_threads
        # The signature runner is made for each use and dropped after: while one exists, it holds
        # a reference to the interpreter's internals, and the Interpreter then refuses
        # resize_tensor_input/allocate_tensors/invoke ("at least 1 reference to internal data").
        self.input_name = self.output_name = None
        signature = self.interpreter.get_signature_list().get(SIGNATURE_KEY)
        if signature and len(signature["inputs"]) == 1 and len(signature["outputs"]) == 1:
            self.input_name = signature["inputs"][0]
            self.output_name = signature["outputs"][0]
        self._refresh_details()
        self.batch_size = int(self._input["shape"][0])

    @property
    def has_signature(self):
        """True if the model has a serving_default signature with one input and one output."""
        return self.input_name is not None

    def _refresh_details(self):
        if self.has_signature:
            signature = self.interpreter.get_signature_runner(SIGNATURE_KEY)
            self._input = signature.get_input_details()[self.input_name]
            self._output = signature.get_output_details()[self.output_name]
        else:
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]

    @property
    def input_details(self):
        """The input tensor's details (Interpreter.get_input_details format)."""
        return self._input

    @property
    def output_details(self):
        """The output tensor's details (Interpreter.get_output_details format)."""
        return self._output

    @property
    def input_shape(self):
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def input_dtype(self):
        """numpy dtype of the input tensor: np.uint8, np.int8, np.int16 or np.float32."""
        return self._input["dtype"]

    @property
    def output_dtype(self):
        """numpy dtype of the output tensor (before dequantization)."""
        return self._output["dtype"]

    @property
    def outputs_probabilities(self):
        """True if the model's output is softmax probabilities (signature output named
        "probabilities"); False for logits, and for old files without a signature (logits)."""
        return self.output_name == "probabilities"

    def resize(self, batch_size):
        """Sets the batch dimension of the input (re-allocates tensors)."""
        if batch_size == self.batch_size:
            return
        shape = [batch_size] + list(self.input_shape)
        self.interpreter.resize_tensor_input(self._input["index"], shape, strict=False)
        self.interpreter.allocate_tensors()
        self._refresh_details()
        self.batch_size = batch_size

    def pixels_to_input(self, pixels):
        """uint8 pixels [N, H, W, C] 0..255 -> the input tensor's values (see module doc).

        Raises:
          ValueError: pixels are not uint8 (float images: use to_pixels), not rank 4, not the
            model's H x W, or C is neither the model's channels nor 1.
        """
        pixels = checked_pixels(pixels, self.input_shape)
        if self.input_dtype == np.uint8:
            return pixels
        return self.quantize_input(pixels.astype(np.float32) / 255.0)

    def quantize_input(self, images):
        """float32 [N, H, W, C] in [0, 1] -> the input tensor's values, for callers that hold
        float images (e.g. a TFLM comparison): float32 as is; integer types
        q = round(x / scale) + zero_point, clipped to the type (uint8 at scale 1/255, zero point
        0: the pixel). 1-channel images are replicated for a 3-channel input."""
        images = np.asarray(images, np.float32)
        channels = self.input_shape[-1]
        if images.shape[-1] == 1 and channels != 1:
            images = np.repeat(images, channels, axis=-1)
        dtype = self.input_dtype
        if dtype == np.float32:
            return images
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(images / scale) + zero_point, info.min, info.max).astype(dtype)

    def dequantize_output(self, values):
        """Output tensor values -> float32: (q - zero_point) · scale for integer outputs."""
        if self.output_dtype == np.float32:
            return values.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return (values.astype(np.float32) - zero_point) * scale

    def set_input(self, pixels):
        """Resizes to len(pixels) if needed and copies the converted batch in (pixels_to_input).
        With invoke() and output(), the steps of __call__ one at a time (latency timing)."""
        values = self.pixels_to_input(pixels)
        self.resize(len(values))
        self.interpreter.set_tensor(self._input["index"], values)

    def invoke(self):
        self.interpreter.invoke()

    def output(self):
        """float32 [N, K] of the last invoke, dequantized."""
        return self.dequantize_output(self.interpreter.get_tensor(self._output["index"]))

    def __call__(self, pixels, batch_size=64):
        """uint8 pixels [N, H, W, C] 0..255 -> float32 [N, K] probabilities or logits.

        Runs the serving_default signature runner when the model has one (by its input name),
        else the first input/output tensor. Raises ValueError as pixels_to_input.
        """
        pixels = np.asarray(pixels)
        outputs = []
        if not self.has_signature:
            for start in range(0, len(pixels), batch_size):
                self.set_input(pixels[start:start + batch_size])
                self.invoke()
                outputs.append(self.output())
            return np.concatenate(outputs)
        signature = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        try:
            for start in range(0, len(pixels), batch_size):
                values = self.pixels_to_input(pixels[start:start + batch_size])
                # The signature runner resizes the input to len(values) and allocates itself.
                out = signature(**{self.input_name: values})[self.output_name]
                outputs.append(self.dequantize_output(out))
                self.batch_size = len(values)
        finally:
            del signature  # also when pixels_to_input raises (a kept traceback holds the frame)
        self._refresh_details()
        return np.concatenate(outputs)
