"""optimize/fold.py: BatchNormalization folded into the layer before it, same function."""
import numpy as np
import pytest
import tf_keras as keras

from tftool import models
from tftool.optimize import fold


def with_random_statistics(model, seed=0):
    """`model` with BN moving statistics and affine parameters far from their initial
    values (1, 0), so a wrong fold shows in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model


def count(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)


def test_small_cnn_folds_every_bn_and_fuses_its_relu():
    model = with_random_statistics(models.build("small_cnn", (8, 8, 1), 10, width=8))
    folded = fold.fold_batchnorm(model)
    assert count(model, keras.layers.BatchNormalization) == 4
    assert count(folded, keras.layers.BatchNormalization) == 0
    assert count(folded, keras.layers.ReLU) == 0
    conv = folded.get_layer("conv0_1")
    assert conv.use_bias and conv.get_config()["activation"] == "relu"
    x = np.random.RandomState(0).rand(8, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), model(x, training=False).numpy(), atol=1e-5)
    assert model.get_layer("bn0_1") is not None  # the input model is unchanged


def test_mobilenet_v2_keeps_bn_before_relu6_and_folds_the_linear_bottlenecks():
    model = with_random_statistics(models.build("mobilenet_v2", (32, 32, 3), 10, alpha=0.35))
    folded = fold.fold_batchnorm(model)
    before = count(model, keras.layers.BatchNormalization)
    after = count(folded, keras.layers.BatchNormalization)
    # the 17 projection convs (conv -> BN -> Add or the next block) fold; BN -> ReLU6 stays,
    # for tfmot's Conv-BN-ReLU QAT transform (fold.foldable_pairs says why)
    assert before - after == 17 and count(folded, keras.layers.ReLU) == count(model,
                                                                              keras.layers.ReLU)
    x = np.random.RandomState(0).rand(2, 32, 32, 3).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), model(x, training=False).numpy(), atol=1e-4)


def test_a_conv_with_two_consumers_is_left_alone():
    inputs = keras.Input((6, 6, 1))
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(conv)
    merged = keras.layers.Add()([bn, conv])  # the unnormalized output is used too
    model = keras.Model(inputs, keras.layers.Flatten()(merged))
    assert fold.fold_batchnorm(model) is model


def test_sequential_models_are_refused_in_one_line():
    model = keras.Sequential([keras.layers.Conv2D(2, 3, input_shape=(6, 6, 1)),
                              keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="fold_batchnorm needs a functional model"):
        fold.fold_batchnorm(model)
