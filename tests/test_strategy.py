import numpy as np
import pytest
import tensorflow as tf

from tftool import models
from tftool.train import losses, strategy
from tftool.train import fit as trainer


def test_two_cpu_replicas_train_in_sync():
    s = strategy.build("auto", cpu_replicas=2)
    assert isinstance(s, tf.distribute.MirroredStrategy)
    assert s.num_replicas_in_sync == 2
    with s.scope():
        model = models.build("small_cnn", (8, 8, 1), 10, width=4)
        losses.default_compile(model, trainer.make_optimizer("adam", 1e-2))
    assert isinstance(model.layers[1].kernel, tf.distribute.DistributedValues)
    x = np.random.RandomState(0).rand(64, 8, 8, 1).astype(np.float32)
    y = np.arange(64) % 10
    before = model.get_weights()[0].copy()
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0)
    kernel = model.layers[1].kernel
    replicas = [v.numpy() for v in s.experimental_local_results(kernel)]
    np.testing.assert_array_equal(replicas[0], replicas[1])  # mirrored: identical copies
    assert not np.allclose(replicas[0], before)


def test_default_and_one_device():
    assert strategy.build("auto").num_replicas_in_sync == 1
    assert isinstance(strategy.build("one_device"), tf.distribute.OneDeviceStrategy)


def test_unknown_strategy():
    with pytest.raises(ValueError, match="allowed: auto, mirrored, one_device"):
        strategy.build("parameter_server")
