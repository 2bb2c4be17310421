import numpy as np
import pytest
import tf_keras as keras

from tftool import models
from tftool.export import convert
from tftool.optimize import qat
from tftool.litert import Runner


@pytest.fixture(scope="module")
def model():
    m = models.build("small_cnn", (8, 8, 1), 10, width=8)
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(0).rand(64, 8, 8, 1).astype(np.float32)
    m.fit(x, np.arange(64) % 10, epochs=1, verbose=0)  # non-trivial BN statistics
    return m


def representative():
    rng = np.random.RandomState(1)
    for _ in range(10):
        yield [rng.rand(1, 8, 8, 1).astype(np.float32)]


@pytest.mark.parametrize("mode,io_dtype", [("float32", np.float32), ("float16", np.float32),
                                           ("dynamic_range", np.float32), ("int8", np.int8)])
def test_post_training_modes(model, mode, io_dtype):
    content = convert.to_tflite(model, mode, representative_dataset=representative)
    runner = Runner(model_content=content)
    assert runner.input_details["dtype"] == io_dtype
    assert runner.output_details["dtype"] == io_dtype
    tensor_types = {d["dtype"] for d in runner.interpreter.get_tensor_details()}
    if mode == "float16":
        assert np.float16 in tensor_types
    if mode == "int8":
        assert np.float32 not in tensor_types  # full integer
        scale, zero_point = runner.input_details["quantization"]
        assert scale == pytest.approx(1 / 255, rel=0.05) and zero_point == -128


def test_sizes_shrink_as_expected():
    # width 32: weights, not the flatbuffer's fixed overhead, dominate the file
    model = models.build("small_cnn", (8, 8, 1), 10, width=32)
    sizes = {m: len(convert.to_tflite(model, m, representative_dataset=representative))
             for m in ("float32", "float16", "int8")}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["int8"] < 0.35 * sizes["float32"]


def test_qat_int8_has_int8_io(model):
    q = qat.apply(model)
    content = convert.to_tflite(q, "qat_int8")
    runner = Runner(model_content=content)
    assert runner.input_details["dtype"] == np.int8
    assert runner.output_details["dtype"] == np.int8


def test_errors(model):
    with pytest.raises(ValueError, match="allowed: float32, float16"):
        convert.to_tflite(model, "int4")
    with pytest.raises(ValueError, match="representative_dataset"):
        convert.to_tflite(model, "int8")
