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
                                 augment=False)
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
