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
