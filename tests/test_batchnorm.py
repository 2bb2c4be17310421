"""BN re-estimation (train/batchnorm.py): exact population statistics, other state untouched."""
import numpy as np
import pytest

import tftool  # noqa: F401
from tftool.train import batchnorm

import tensorflow as tf
import tf_keras as keras


def _model():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.BatchNormalization(momentum=0.999, name="bn_in")(inputs)
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.999, name="bn_mid")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


def _batches(n, seed=0):
    rng = np.random.default_rng(seed)
    # Channel 0: mean 5, std 2; channel 1: mean -3, std 0.5.
    return [(rng.normal([5.0, -3.0], [2.0, 0.5], (64, 4, 4, 2)).astype(np.float32),)
            for _ in range(n)]


def test_reestimate_sets_population_statistics_and_keeps_other_state():
    keras.utils.set_random_seed(0)
    model = _model()
    batches = _batches(8)
    kernel = model.get_layer("conv").kernel.numpy().copy()
    assert batchnorm.reestimate(model, batches, num_batches=5) == 2
    x = np.concatenate([b[0] for b in batches[:5]])  # only the first 5 are used
    bn_in = model.get_layer("bn_in")
    np.testing.assert_allclose(bn_in.moving_mean.numpy(), x.mean((0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(bn_in.moving_variance.numpy(), x.var((0, 1, 2)), rtol=1e-3)
    # The second BN's inputs are normalized by the first with batch statistics (as in
    # training); in inference mode its output over the data is standardized.
    mid = keras.Model(model.inputs, model.get_layer("bn_mid").output)
    y = mid(x, training=False).numpy()
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0.0, atol=0.05)
    np.testing.assert_allclose(y.std((0, 1, 2)), 1.0, atol=0.05)
    np.testing.assert_array_equal(model.get_layer("conv").kernel.numpy(), kernel)


def test_reestimate_inside_qat_wrappers():
    from tftool.optimize import qat
    from tftool import models

    keras.utils.set_random_seed(0)
    model = qat.apply(models.small_cnn((8, 8, 1), 3, width=2))  # 2 stages × 2 BNs
    found = batchnorm.batchnorm_layers(model)
    assert len(found) == 4 and all(inner.name.startswith("bn") for _, inner, _ in found)
    quantizer_state = {v.name: v.numpy().copy() for v in model.non_trainable_variables
                       if "moving" not in v.name}
    images = np.random.default_rng(1).uniform(0, 1, (2, 32, 8, 8, 1)).astype(np.float32)
    assert batchnorm.reestimate(model, list(images), 2) == 4
    first = found[0][1]
    assert not np.allclose(first.moving_variance.numpy(), 1.0)  # moved off its initial value
    for v in model.non_trainable_variables:  # QAT ranges restored after the training-mode pass
        if v.name in quantizer_state:
            np.testing.assert_array_equal(v.numpy(), quantizer_state[v.name], err_msg=v.name)


def test_reestimate_refuses_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="num_batches=0"):
        batchnorm.reestimate(model, _batches(1), 0)
    with pytest.raises(ValueError, match="no batches"):
        batchnorm.reestimate(model, [], 3)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert batchnorm.reestimate(plain, [np.zeros((2, 3), np.float32)], 1) == 0


def test_stage_runner_reestimates_so_a_lagging_momentum_is_harmless(tmp_path, digits):
    """The issue in miniature: BN momentum 0.9999 leaves the moving statistics at their
    initial values after a short run; the stage runner's re-estimation makes the model
    correct, and without it (bn_batches=0) the chance guard stops the stage."""
    from tftool import UserError, models, stage_runner
    from tftool.train import fit, strategy as strategy_lib

    def build():
        model = models.small_cnn((8, 8, 1), 10, width=8)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9999
        return model

    def job(bn_batches):
        config = fit.TrainConfig(epochs=3, per_replica_batch_size=32, learning_rate=3e-3,
                                 lr_schedule="constant", augment=False, bn_batches=bn_batches)
        return stage_runner.Job(stage="float", build=build, config=config)

    context = stage_runner.Context(workdir=str(tmp_path / "with"), dataset=digits,
                                   image_size=(8, 8),
                                   strategy=strategy_lib.build("auto", None, 1))
    assert stage_runner.run(job(20), context)["test_accuracy"] > 0.8
    context.workdir = str(tmp_path / "without")
    # Measured: test 0.164, train 0.925 (10 classes: near chance is below 0.19).
    with pytest.raises(UserError, match="BatchNormalization moving statistics"):
        stage_runner.run(job(0), context)


def test_reestimate_under_a_two_replica_mirrored_strategy():
    """Inside strategy.scope() (as the stage runner calls it) with MirroredStrategy's
    sync-on-read moving statistics: every replica reads the re-estimated values."""
    from tftool.train import strategy as strategy_lib

    strategy = strategy_lib.build("auto", cpu_replicas=2)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _model()
        batches = _batches(3)
        assert batchnorm.reestimate(model, batches, num_batches=3) == 2
        x = np.concatenate([b[0] for b in batches])
        np.testing.assert_allclose(model.get_layer("bn_in").moving_mean.numpy(),
                                   x.mean((0, 1, 2)), rtol=1e-4)


def test_a_shared_batchnorm_is_refused_by_name():
    inputs = keras.Input((4, 4, 2))
    bn = keras.layers.BatchNormalization(name="shared_bn")
    model = keras.Model(inputs, keras.layers.Add()([bn(inputs), bn(inputs * 2.0)]))
    with pytest.raises(ValueError, match="'shared_bn' is used 2 times"):
        batchnorm.reestimate(model, _batches(1), 1)


def test_reestimate_a_stripped_pruned_model_whose_layers_have_two_graphs():
    """tfmot's strip_pruning reuses the unwrapped layers (BN gets a second inbound node)."""
    import tensorflow_model_optimization as tfmot
    from tftool import models

    wrapped = tfmot.sparsity.keras.prune_low_magnitude(models.small_cnn((8, 8, 1), 3, width=2))
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    bn = stripped.get_layer("bn0_0")
    assert len(bn.inbound_nodes) == 2
    images = np.random.default_rng(2).normal(3.0, 1.0, (2, 16, 8, 8, 1)).astype(np.float32)
    assert batchnorm.reestimate(stripped, list(images), 2) == 4
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)
