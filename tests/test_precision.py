"""Mixed precision (float16 compute, float32 logits) and float32 saved/exported models."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import UserError, models
from tftool.export import convert
from tftool.train import precision
from tftool.train import fit as trainer
from tftool.litert import Runner


@pytest.fixture
def mixed_policy():
    """mixed_float16 for one test (settable on CPU; only *training* on CPU is refused)."""
    keras.mixed_precision.set_global_policy(precision.MIXED)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name,shape", [("small_cnn", (8, 8, 1)), ("mobilenet_v2", (32, 32, 3))])
def test_mixed_model_keeps_logits_float32(mixed_policy, name, shape):
    model = models.build(name, shape, 10, width=4, alpha=0.35)
    computes = {layer.compute_dtype for layer in model.layers if layer.weights}
    assert "float16" in computes  # the convolutions run in float16
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model.output.dtype == tf.float32
    assert all(w.dtype == tf.float32 for w in model.weights)  # variables stay float32


def test_to_float32_rebuilds_with_the_same_weights_and_exports_no_float16(mixed_policy):
    mixed = models.build("small_cnn", (8, 8, 1), 10, width=4)
    x = np.random.RandomState(0).rand(16, 8, 8, 1).astype(np.float32)
    clean = precision.to_float32(mixed)
    assert precision.is_float32(clean) and not precision.is_float32(mixed)
    for a, b in zip(mixed.get_weights(), clean.get_weights()):
        np.testing.assert_array_equal(a, b)
    # same function up to float16 rounding of the mixed model
    np.testing.assert_allclose(clean(x).numpy(), mixed(x).numpy(), atol=0.05)
    runner = Runner(model_content=convert.to_tflite(clean, "float32"))
    dtypes = {d["dtype"] for d in runner.interpreter.get_tensor_details()}
    assert np.float16 not in dtypes and np.float32 in dtypes
    assert precision.to_float32(clean) is clean


def test_mixed_precision_is_refused_on_cpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="--mixed_precision needs a GPU"):
        precision.set_policy(True)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_linear_scaling_rule():
    # Goyal et al. 2017: k times the batch, k times the learning rate.
    assert trainer.scaled_learning_rate(3e-3, 256, 64) == pytest.approx(1.2e-2)
    assert trainer.scaled_learning_rate(3e-3, 64, 64) == 3e-3
