import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import UserError, data, models
from tftool.export import convert
from tftool.benchmark import sparsity
from tftool.train import fit as trainer
from tftool.optimize import prune


@pytest.fixture(scope="module")
def model():
    return models.build("small_cnn", (8, 8, 1), 10, width=8)


def test_default_schedule_reaches_target_within_the_run():
    s = prune.schedule_steps(220, 0.0, 0.8)
    assert s.end_step <= 220 and (s.end_step - s.begin_step) % s.frequency == 0
    assert s.end_step <= 0.75 * 220  # the last quarter fine-tunes at the target
    assert s.to_tfmot()(tf.constant(s.end_step, tf.int64))[1].numpy() == pytest.approx(0.8)
    explicit = prune.schedule_steps(100, 0.1, 0.5, begin_step=10, end_step=90, frequency=None)
    assert (explicit.end_step - explicit.begin_step) % explicit.frequency == 0


@pytest.mark.parametrize("kwargs,message", [
    (dict(target_sparsity=1.2), "--target_sparsity=1.2"),
    (dict(initial_sparsity=0.9), "--initial_sparsity=0.9"),
    (dict(end_step=300), "--pruning_end_step=300 is after the run's last step (220"),
    (dict(end_step=100, frequency=30), "--pruning_frequency=30 does not divide"),
    (dict(frequency=500), "--pruning_frequency=500 steps is longer than the pruning ramp"),
    (dict(begin_step=220), "--pruning_begin_step=220"),
])
def test_schedule_that_cannot_reach_its_target_is_an_error(kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("+", r"\+")):
        prune.schedule_steps(220, **kwargs)


def test_layer_selection(model):
    assert prune.select_layers(model) == ["conv0_1", "conv1_0", "conv1_1"]
    assert prune.select_layers(model, ["conv1_1"]) == ["conv0_0", "conv0_1", "conv1_0", "logits"]
    with pytest.raises(UserError, match="'nosuch' is neither a kind"):
        prune.select_layers(model, ["nosuch"])
    with pytest.raises(UserError, match="leaves no layer"):
        prune.select_layers(model, ["conv0_0", "conv0_1", "conv1_0", "conv1_1", "logits"])


def test_apply_wraps_a_copy_and_keeps_outputs(model):
    wrapped = prune.apply(model, prune.schedule_steps(100))
    names = [l.name for l in wrapped.layers if type(l).__name__ == "PruneLowMagnitude"]
    assert names == ["prune_low_magnitude_conv0_1", "prune_low_magnitude_conv1_0",
                     "prune_low_magnitude_conv1_1"]
    assert not any("prune" in l.name for l in model.layers)
    x = np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(wrapped(x, training=False), model(x, training=False), atol=1e-5)


def test_pruning_under_two_replicas_reaches_target_and_survives_into_tflite(digits, tmp_path):
    """Wrapped inside the MirroredStrategy scope (trainer.train's model_fn), as prune.py does."""
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
    config = trainer.TrainConfig(epochs=2, per_replica_batch_size=32, learning_rate=1e-3,
                                 lr_schedule="cosine", augment=False)
    steps = (digits.num_train // 64) * config.epochs
    schedule = prune.schedule_steps(steps, 0.0, 0.6)
    source = models.build("small_cnn", (8, 8, 1), 10, width=8)
    pruned, _ = trainer.train(strategy, lambda: prune.apply(source, schedule), digits, (8, 8),
                              config, str(tmp_path),
                              extra_callbacks=prune.callbacks(str(tmp_path / "pruning")))
    with strategy.scope():
        stripped = prune.strip(pruned)
    per_layer = prune.layer_sparsity(stripped)
    for name in ("conv0_1", "conv1_0", "conv1_1"):
        assert per_layer[name] == pytest.approx(0.6, abs=0.01)
    assert per_layer["conv0_0"] < 0.05 and per_layer["logits"] < 0.05
    assert prune.overall_sparsity(stripped, ["conv0_1", "conv1_0"]) == pytest.approx(0.6, abs=0.01)
    content = convert.to_tflite(
        stripped, "int8", representative_dataset=data.representative_dataset(digits, (8, 8), 20))
    kernels = sparsity.kernel_sparsity(model_content=content)
    assert len(kernels) == 5
    assert [round(k["zeros"] / k["size"], 1) for k in kernels][1:4] == [0.6, 0.6, 0.6]
    assert sparsity.tflite_sparsity(model_content=content, min_sparsity=0.5) == pytest.approx(
        0.6, abs=0.01)


def test_is_m_by_n_groups_along_the_input_channel_axis():
    kernel = np.ones((3, 3, 8, 4), np.float32)  # Keras Conv2D [H, W, I, O]
    kernel[:, :, 0::4, :] = 0
    kernel[:, :, 1::4, :] = 0
    assert prune.is_m_by_n(kernel)  # 2 zeros in every 4 input channels
    assert not prune.is_m_by_n(kernel, 3, 4)
    assert not prune.is_m_by_n(kernel, axis=-1)  # along outputs: no zeros at some positions
    assert prune.is_m_by_n(np.moveaxis(kernel, -2, -1), axis=-1)  # TFLite-like layout
    kernel[0, 0, 2, 0] = 0  # 3 zeros in one group still passes
    assert prune.is_m_by_n(kernel)
    kernel[1, 1, 0, 3] = 5  # 3 non-zeros in one group fails
    assert not prune.is_m_by_n(kernel)
    dense = np.ones((7, 3))  # Dense [I, O], 7 inputs: the last group [a, b, c] is padded
    dense[0:2] = 0
    assert not prune.is_m_by_n(dense)  # 3 non-zeros in the padded group
    dense[4] = 0
    assert prune.is_m_by_n(dense)
    with pytest.raises(ValueError, match="need 0 < m < n"):
        prune.is_m_by_n(dense, 4, 4)


@pytest.mark.parametrize("m_by_n,skip,message", [
    ((4, 2), prune.DEFAULT_SKIP, r"sparsity_m_by_n=\(4, 2\): must be two integers"),
    ((2,), prune.DEFAULT_SKIP, r"sparsity_m_by_n=\(2,\)"),
    ((2, 4), ["last_dense"], "conv0_0 has 1 input channels, not a multiple of n=4"),
])
def test_m_by_n_refuses_what_cannot_hold_the_pattern(model, m_by_n, skip, message):
    with pytest.raises(ValueError, match=message):
        prune.apply(model, None, skip, sparsity_m_by_n=m_by_n)


def test_schedule_none_needs_m_by_n(model):
    with pytest.raises(ValueError, match="schedule=None needs sparsity_m_by_n"):
        prune.apply(model, None)


def test_two_four_pruning_is_exact_in_keras_and_in_tflite(digits, tmp_path):
    """tfmot sets the 2:4 mask at the first step and keeps it through fine-tuning; the int8
    .tflite holds the pattern along the input channels of CONV_2D [O, H, W, I]."""
    strategy = tf.distribute.get_strategy()
    base_config = trainer.TrainConfig(epochs=12, per_replica_batch_size=64, learning_rate=5e-3,
                                      lr_schedule="cosine", augment=False)
    source, _ = trainer.train(strategy, lambda: models.build("small_cnn", (8, 8, 1), 10, width=8),
                              digits, (8, 8), base_config, str(tmp_path / "float"))
    x, y = data.test_arrays(digits, (8, 8))
    float_acc = np.mean(np.argmax(source.predict(x, verbose=0), -1) == y)
    config = trainer.TrainConfig(epochs=4, per_replica_batch_size=64, learning_rate=1e-3,
                                 lr_schedule="cosine", augment=False)
    pruned, _ = trainer.train(strategy,
                              lambda: prune.apply(source, None, sparsity_m_by_n=(2, 4)),
                              digits, (8, 8), config, str(tmp_path / "pruned"),
                              extra_callbacks=prune.callbacks(str(tmp_path / "logs")))
    stripped = prune.strip(pruned)
    for name in ("conv0_1", "conv1_0", "conv1_1"):
        kernel = stripped.get_layer(name).get_weights()[0]
        assert prune.is_m_by_n(kernel) and np.mean(kernel == 0) == 0.5
        assert not prune.is_m_by_n(kernel, axis=-1)  # the groups are not along outputs
    content = convert.to_tflite(
        stripped, "int8", representative_dataset=data.representative_dataset(digits, (8, 8), 50))
    patterns = sparsity.kernel_patterns(model_content=content)
    # conv0_0 has 1 input channel (no 2:4 possible); logits were skipped (dense)
    assert [p["m_by_n"] for p in patterns] == [None, True, True, True, False]
    assert [p["shape"][-1] for p in patterns] == [1, 8, 8, 16, 16]  # input channels last
    from tftool.litert import Runner, to_pixels
    accuracy = np.mean(np.argmax(Runner(model_content=content)(to_pixels(x)), -1) == y)
    assert accuracy >= float_acc - 0.02
