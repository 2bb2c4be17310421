"""Offline transfer learning: --weights=PATH for mobilenet_v2's backbone and
--freeze_backbone_epochs (two phases, each resumable after a kill)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import UserError, data, models
from tftool.train import fit


@pytest.fixture(scope="module")
def backbone_path(tmp_path_factory):
    keras.utils.set_random_seed(1)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35,
                                          input_shape=(32, 32, 3))
    path = str(tmp_path_factory.mktemp("weights") / "backbone.h5")
    base.save_weights(path)
    return path, base.get_layer("Conv1").kernel.numpy()


def _tiny_dataset(n=64):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(n) % 3).astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return data.Dataset(name="tiny", train=ds, test=ds.take(16), class_names=["a", "b", "c"],
                        image_shape=(32, 32, 3), num_train=n, num_test=16, hflip_safe=False)


def test_weights_path_loads_the_backbone(backbone_path):
    path, conv1 = backbone_path
    model = models.build("mobilenet_v2", (32, 32, 3), 3, alpha=0.35, weights=path)
    np.testing.assert_array_equal(model.get_layer("Conv1").kernel.numpy(), conv1)


@pytest.mark.parametrize("shape,alpha,match", [
    ((32, 32, 1), 0.35, "with 1 channel"),
    ((32, 32, 3), 0.75, "--alpha=0.75"),
])
def test_weights_that_do_not_fit_are_one_line(backbone_path, shape, alpha, match):
    with pytest.raises(UserError, match=match) as e:
        models.build("mobilenet_v2", shape, 3, alpha=alpha, weights=backbone_path[0])
    assert "\n" not in str(e.value)


def test_other_architecture_and_missing_file(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    other.save_weights(str(tmp_path / "other.h5"))
    with pytest.raises(UserError, match="does not fit mobilenet_v2"):
        models.build("mobilenet_v2", (32, 32, 3), 3, alpha=0.35, weights=str(tmp_path / "other.h5"))
    with pytest.raises(UserError, match="no such weights file"):
        models.build("mobilenet_v2", (32, 32, 3), 3, weights=str(tmp_path / "absent.h5"))


def test_alpha_range_builds():
    for alpha in (0.35, 1.4):
        assert models.build("mobilenet_v2", (32, 32, 3), 3, alpha=alpha).count_params() > 0


class _Watch(keras.callbacks.Callback):
    """Records Conv1's kernel after each epoch and can stop the run like a kill."""

    def __init__(self, kill_at=None):
        super().__init__()
        self.kernels, self.kill_at = {}, kill_at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.kill_at:
            raise KeyboardInterrupt("killed")

    def on_epoch_end(self, epoch, logs=None):
        self.kernels[epoch] = self.model.get_layer("Conv1").kernel.numpy().copy()


def test_freeze_then_fine_tune_resumes_after_a_kill(tmp_path, backbone_path):
    path, conv1 = backbone_path
    dataset = _tiny_dataset()
    config = fit.TrainConfig(epochs=3, learning_rate=1e-3, per_replica_batch_size=32,
                             augment=False, lr_schedule="constant", freeze_backbone_epochs=1)
    strategy = tf.distribute.get_strategy()

    def build():
        return models.build("mobilenet_v2", (32, 32, 3), 3, alpha=0.35, weights=path)

    watch = _Watch(kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        fit.train(strategy, build, dataset, (32, 32), config, str(tmp_path), [watch])
    np.testing.assert_array_equal(watch.kernels[0], conv1)  # head phase: backbone frozen
    assert not np.array_equal(watch.kernels[1], conv1)  # fine-tuning moves it
    assert (tmp_path / "backup" / "head").is_dir() and (tmp_path / "backup" / "chief").is_dir()
    watch = _Watch()
    model, history = fit.train(strategy, build, dataset, (32, 32), config, str(tmp_path),
                               [watch])
    assert list(watch.kernels) == [2] and len(history["loss"]) == 1  # resumed at epoch 3
    assert all(layer.trainable for layer in model.layers)


def test_freeze_needs_an_epoch_to_fine_tune():
    config = fit.TrainConfig(epochs=2, learning_rate=1e-3, lr_schedule="cosine",
                             freeze_backbone_epochs=2)
    with pytest.raises(UserError, match="--freeze_backbone_epochs=2 must be in"):
        fit.training_phases(config, 1e-3, "b")
