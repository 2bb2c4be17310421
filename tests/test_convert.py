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


def test_int16x8_has_float_io_int16_activations_and_tracks_keras(model):
    content = convert.to_tflite(model, "int16x8", representative_dataset=representative)
    runner = Runner(model_content=content)
    assert runner.input_details["dtype"] == np.float32
    assert runner.output_details["dtype"] == np.float32
    details = runner.interpreter.get_tensor_details()
    assert any(d["dtype"] == np.int16 for d in details)  # activations
    assert any(d["dtype"] == np.int8 for d in details)  # weights
    assert not any(d["dtype"] == np.uint8 for d in details)
    x = np.random.RandomState(2).rand(16, 8, 8, 1).astype(np.float32)
    keras_logits = model.predict(x, verbose=0)
    # int8 weights dominate the error of this model; the activation outlier model of
    # test_debug.py shows what the int16 activations buy
    assert np.abs(runner(x) - keras_logits).max() < 0.02
    with pytest.raises(ValueError, match="int16x8' needs a representative_dataset"):
        convert.to_tflite(model, "int16x8")


@pytest.mark.parametrize("op,fn", [
    ("FLOOR", lambda tf, x: tf.math.floor(x)),  # the converter refuses it
    ("SQUARED_DIFFERENCE", lambda tf, x: tf.math.squared_difference(x, 0.5)),  # the runtime
])
def test_int16x8_names_an_op_without_a_16x8_kernel(op, fn):
    import tensorflow as tf

    from tftool import UserError

    inputs = keras.Input((8, 8, 1))
    x = fn(tf, keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)), name="odd")
    with pytest.raises(UserError, match=f"^int16x8: odd has op {op}, which ") as info:
        convert.to_tflite(model, "int16x8", representative_dataset=representative)
    assert "\n" not in str(info.value)
