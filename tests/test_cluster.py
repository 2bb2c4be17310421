"""optimize/cluster.py: tfmot weight clustering, per layer, per channel and sparsity-preserving."""
import gzip

import numpy as np
import pytest
import tensorflow as tf

from tftool import UserError, data, models
from tftool.benchmark import sparsity
from tftool.export import convert
from tftool.litert import Runner, to_pixels
from tftool.optimize import cluster
from tftool.train import fit as trainer

CONFIG = dict(per_replica_batch_size=64, lr_schedule="cosine", augment=False)


@pytest.fixture(scope="module")
def model():
    return models.build("small_cnn", (8, 8, 1), 10, width=8)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """small_cnn trained on digits for 12 epochs (~0.97 test accuracy), ~6 s."""
    config = trainer.TrainConfig(epochs=12, learning_rate=5e-3, **CONFIG)
    m, _ = trainer.train(tf.distribute.get_strategy(),
                         lambda: models.build("small_cnn", (8, 8, 1), 10, width=8), digits,
                         (8, 8), config, str(tmp_path_factory.mktemp("float")))
    return m


@pytest.mark.parametrize("kwargs,message", [
    (dict(number_of_clusters=1), "number_of_clusters=1: must be an integer ≥ 2"),
    (dict(number_of_clusters=8.0), "number_of_clusters=8.0: must be an integer"),
    (dict(number_of_clusters=2, preserve_sparsity=True), "≥ 3 with preserve_sparsity"),
    (dict(cluster_centroids_init="kmeans"),
     "allowed: kmeans_plus_plus, density_based, linear, random"),
])
def test_bad_options_name_the_allowed_values(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cluster.apply(model, **kwargs)


def test_apply_wraps_a_copy_of_the_selected_layers(model):
    wrapped = cluster.apply(model, 8)
    names = [l.name for l in wrapped.layers if type(l).__name__ == "ClusterWeights"]
    assert names == ["cluster_conv0_1", "cluster_conv1_0", "cluster_conv1_1", "cluster_logits"]
    assert not any("cluster" in l.name for l in model.layers)
    assert cluster.select_layers(model, ["first_conv", "last_dense"]) == [
        "conv0_1", "conv1_0", "conv1_1"]
    with pytest.raises(UserError, match="to cluster"):
        cluster.select_layers(model, ["conv0_0", "conv0_1", "conv1_0", "conv1_1", "logits"])
    with pytest.raises(ValueError, match="still wrapped"):
        cluster.unique_values(wrapped)


def test_stripped_kernels_hold_at_most_k_values_and_start_near_the_input(model):
    stripped = cluster.strip(cluster.apply(model, 8))
    counts = cluster.unique_values(stripped)
    assert counts["conv0_0"] == 72  # skipped: 3x3x1x8 distinct floats
    assert all(counts[n] <= 8 for n in ("conv0_1", "conv1_0", "conv1_1", "logits"))
    x = np.random.RandomState(0).rand(16, 8, 8, 1).astype(np.float32)
    # k-means on a trained-from-init kernel: outputs move, but stay correlated
    a, b = model(x, training=False).numpy(), stripped(x, training=False).numpy()
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_per_channel_clusters_each_output_channel_of_a_bias_free_conv(model):
    """tfmot's own cluster_weights() skips per-channel clustering of every Conv2D without bias
    (it takes the kernel for the bias when counting channels); cluster.apply must not."""
    stripped = cluster.strip(cluster.apply(model, 4, per_channel=True))
    per_channel = cluster.unique_values(stripped, per_channel=True)
    whole = cluster.unique_values(stripped)
    for name in ("conv0_1", "conv1_0", "conv1_1"):
        assert per_channel[name] <= 4
        assert whole[name] > 4  # different centroids per channel
    assert whole["logits"] <= 4  # Dense: per kernel, as tfmot documents
    with pytest.raises(ValueError, match="conv0_0 has 9 weights per output channel"):
        cluster.apply(model, 16, per_channel=True, skip=())


def test_preserve_sparsity_keeps_every_zero_through_fine_tuning(model, digits, tmp_path):
    pruned = models.build("small_cnn", (8, 8, 1), 10, width=8)
    pruned.set_weights(model.get_weights())
    for name in ("conv0_1", "conv1_0", "conv1_1"):
        layer = pruned.get_layer(name)
        kernel = layer.get_weights()[0]
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.7)] = 0.0
        layer.set_weights([kernel])
    config = trainer.TrainConfig(epochs=1, learning_rate=1e-3, **CONFIG)

    def fine_tuned(preserve_sparsity, stage):
        wrapped, _ = trainer.train(
            tf.distribute.get_strategy(),
            lambda: cluster.apply(pruned, 8, preserve_sparsity=preserve_sparsity), digits,
            (8, 8), config, str(tmp_path / stage))
        return cluster.strip(wrapped)

    kept, lost = fine_tuned(True, "kept"), fine_tuned(False, "lost")
    for name in ("conv0_1", "conv1_0", "conv1_1"):
        before = pruned.get_layer(name).get_weights()[0] == 0
        np.testing.assert_array_equal(kept.get_layer(name).get_weights()[0] == 0, before)
        assert cluster.unique_values(kept)[name] <= 8
        # plain clustering trains the centroid the zeros sit on away from zero
        assert np.mean(lost.get_layer(name).get_weights()[0] == 0) < 0.1


def test_fine_tuned_clusters_survive_int8_and_compress(trained, digits, tmp_path):
    x, y = data.test_arrays(digits, (8, 8))
    float_acc = np.mean(np.argmax(trained.predict(x, verbose=0), -1) == y)
    config = trainer.TrainConfig(epochs=5, learning_rate=1e-3, **CONFIG)
    wrapped, _ = trainer.train(tf.distribute.get_strategy(), lambda: cluster.apply(trained, 8),
                               digits, (8, 8), config, str(tmp_path))
    stripped = cluster.strip(wrapped)
    assert max(cluster.unique_values(stripped)[n]
               for n in ("conv0_1", "conv1_0", "conv1_1", "logits")) <= 8
    rep = data.representative_dataset(digits, (8, 8), 50)
    content = convert.to_tflite(stripped, "int8_per_tensor", rep)
    plain = convert.to_tflite(trained, "int8", rep)
    accuracy = np.mean(np.argmax(Runner(model_content=content)(to_pixels(x)), -1) == y)
    assert accuracy >= float_acc - 0.02
    # BN folded before clustering and one scale per kernel: each clustered kernel stores ≤ 8
    # int8 values (the skipped first conv keeps its own)
    patterns = sparsity.kernel_patterns(model_content=content)
    assert [p["unique"] <= 8 for p in patterns] == [False, True, True, True, True]
    # per-channel int8 of the same model maps one centroid to a different code per channel
    per_channel = sparsity.kernel_patterns(model_content=convert.to_tflite(stripped, "int8", rep))
    assert max(p["unique"] for p in per_channel[1:]) > 8
    assert len(gzip.compress(content)) < 0.85 * len(gzip.compress(plain))
