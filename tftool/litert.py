"""A .tflite model as a Python callable, on `ai_edge_litert`'s Interpreter.

The callable takes float32 images in [0, 1] like the Keras model and returns float32 logits:
int8 inputs are quantized with the model's own scale/zero point, int8 outputs dequantized.
"""
import numpy as np

from tftool import UserError


class Runner:
    """Runs a TFLite model.

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
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.batch_size = int(self._input["shape"][0])

    @property
    def input_details(self):
        return self._input

    @property
    def output_details(self):
        return self._output

    @property
    def input_shape(self):
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self._input["shape"][1:])

    def resize(self, batch_size):
        """Sets the batch dimension of the input (re-allocates tensors)."""
        if batch_size == self.batch_size:
            return
        shape = [batch_size] + list(self.input_shape)
        self.interpreter.resize_tensor_input(self._input["index"], shape, strict=False)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.batch_size = batch_size

    def quantize_input(self, images):
        """float32 [N, H, W, C] in [0, 1] -> the input tensor's dtype (int8: q = x/scale + zp)."""
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return images.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        q = np.round(images / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize_output(self, values):
        if self._output["dtype"] == np.float32:
            return values.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return (values.astype(np.float32) - zero_point) * scale

    def set_input(self, images):
        """Resizes to len(images) if needed and copies the (quantized) batch in."""
        self.resize(len(images))
        self.interpreter.set_tensor(self._input["index"], self.quantize_input(images))

    def invoke(self):
        self.interpreter.invoke()

    def output(self):
        return self.dequantize_output(self.interpreter.get_tensor(self._output["index"]))

    def __call__(self, images, batch_size=64):
        """float32 [N, H, W, C] in [0, 1] -> float32 [N, K] logits (dequantized)."""
        images = np.asarray(images, np.float32)
        outputs = []
        for start in range(0, len(images), batch_size):
            self.set_input(images[start:start + batch_size])
            self.invoke()
            outputs.append(self.output())
        return np.concatenate(outputs)
