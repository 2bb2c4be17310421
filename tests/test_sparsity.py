import numpy as np
import pytest
import tf_keras as keras

from tftool import UserError
from tftool.export import convert
from tftool.benchmark import sparsity


def dense_model(zero_fraction):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.RandomState(0)
    conv = model.layers[1]
    kernel = rng.uniform(0.1, 1.0, conv.kernel.shape) * rng.choice([-1, 1], conv.kernel.shape)
    kernel.reshape(-1)[:int(zero_fraction * kernel.size)] = 0
    conv.set_weights([kernel, np.zeros(8)])
    return model


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic_range"])
def test_counts_zeros_in_kernels(mode):
    content = convert.to_tflite(dense_model(0.5), mode)
    kernels = sparsity.kernel_sparsity(model_content=content)
    assert [k["op"] for k in kernels] == ["CONV_2D", "FULLY_CONNECTED"]
    assert kernels[0]["size"] == 72 and kernels[0]["zeros"] == 36
    total = 72 + kernels[1]["size"]
    assert sparsity.tflite_sparsity(model_content=content) == pytest.approx(
        (36 + kernels[1]["zeros"]) / total)
    assert sparsity.tflite_sparsity(model_content=content, min_sparsity=0.4) == 0.5


def test_not_a_model():
    with pytest.raises(UserError, match="not a valid .tflite"):
        sparsity.kernel_sparsity(model_content=b"nonsense")


def two_four_model(along):
    """Conv2D 8->4 and Dense 8->4 whose kernels are 2:4 along the input channels ("input") or
    along the output channels ("output") in Keras layout."""
    inputs = keras.Input((4, 4, 8))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.Conv2D(8, 1, use_bias=False)(x)  # 4 -> 8 so the Dense sees 8 inputs
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.RandomState(0)
    for layer in (model.layers[1], model.layers[-1]):
        w = layer.get_weights()
        kernel = rng.uniform(0.5, 1.0, w[0].shape).astype(np.float32)
        axis = -2 if along == "input" else -1
        index = [slice(None)] * kernel.ndim
        for start in (0, 1):
            index[axis] = slice(start, None, 4)
            kernel[tuple(index)] = 0
        layer.set_weights([kernel] + w[1:])
    return model


@pytest.mark.parametrize("along,expected", [("input", True), ("output", False)])
def test_two_four_is_read_along_tflite_input_channels(along, expected):
    """TFLite stores CONV_2D as [O, H, W, I] and FULLY_CONNECTED as [O, I]: 2:4 must hold on
    the last axis. The middle 1x1 conv (4 -> 8) stays dense: False, not None, since its 4
    input channels could hold the pattern."""
    content = convert.to_tflite(two_four_model(along), "float32")
    patterns = sparsity.kernel_patterns(model_content=content)
    assert [p["op"] for p in patterns] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    assert [p["shape"] for p in patterns] == [(4, 3, 3, 8), (8, 1, 1, 4), (4, 8)]
    assert [p["m_by_n"] for p in patterns] == [expected, False, expected]
    assert patterns[0]["unique"] > 4
