import numpy as np
import pytest

from tftool import fileio as workdir, models
from tftool.optimize import qat


@pytest.fixture(scope="module")
def model():
    return models.build("small_cnn", (8, 8, 1), 10, width=4)


def test_apply_wraps_layers_and_keeps_outputs_close(model):
    q = qat.apply(model)
    assert any(type(l).__name__ == "QuantizeWrapperV2" for l in q.layers)
    x = np.random.RandomState(0).rand(8, 8, 8, 1).astype(np.float32)
    assert q.predict(x, verbose=0).shape == (8, 10)
    assert q is not model and not any("quant" in l.name for l in model.layers)


def test_qat_model_saves_and_loads(model, tmp_path):
    q = qat.apply(model)
    path = str(tmp_path / "model.h5")
    workdir.save_model(q, path)
    x = np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(workdir.load_model(path).predict(x, verbose=0),
                               q.predict(x, verbose=0), atol=1e-6)


def test_prune_preserve_scheme(model):
    q = qat.apply(model, scheme="prune_preserve")
    assert any(type(l).__name__ == "QuantizeWrapperV2" for l in q.layers)


def test_unknown_scheme(model):
    with pytest.raises(ValueError, match="allowed: default, prune_preserve, cluster_preserve, "
                                         "cluster_prune_preserve"):
        qat.apply(model, scheme="int4")


def test_mobilenet_v2_rescaling_gets_an_output_config():
    """tfmot's registry lacks Rescaling (mobilenet_v2's input layer); qat.apply handles it."""
    import numpy as np

    from tftool import models

    model = models.build("mobilenet_v2", (32, 32, 3), 10, alpha=0.35)
    wrapped = qat.apply(model)
    x = np.random.RandomState(0).rand(2, 32, 32, 3).astype(np.float32)
    assert any("to_minus1_1" in layer.name for layer in wrapped.layers)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=0.5)  # fake-quant before any training: close, not equal


def test_cluster_schemes_are_cqat_and_pcqat():
    """tfmot's Default8BitClusterPreserveQuantizeScheme defaults to preserve_sparsity=True
    (PCQAT); CQAT must turn it off."""
    assert qat.get_scheme("cluster_preserve").preserve_sparsity is False
    assert qat.get_scheme("cluster_prune_preserve").preserve_sparsity is True


@pytest.mark.parametrize("scheme", ["cluster_preserve", "cluster_prune_preserve"])
def test_check_preflight_accepts_the_cluster_schemes(scheme):
    from tftool.optimize import check

    model = models.build("small_cnn", (8, 8, 1), 10, width=8)
    assert check.unsupported_layers(model, "quantize", scheme) == []
    # a layer tfmot cannot quantize is still found under these schemes
    import tf_keras as keras
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.PReLU(name="prelu")(x)
    bad = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    assert [f["layer"] for f in check.unsupported_layers(bad, "quantize", scheme)] == ["prelu"]


def _pruned_clustered(k=8, zero_fraction=0.8):
    """small_cnn whose conv0_1, conv1_0, conv1_1 are 80% zeros and every kernel but conv0_0
    is clustered to k values keeping the zeros (cluster.apply + strip, no fine-tuning)."""
    from tftool.optimize import cluster

    model = models.build("small_cnn", (8, 8, 1), 10, width=8)
    for name in ("conv0_1", "conv1_0", "conv1_1"):
        layer = model.get_layer(name)
        kernel = layer.get_weights()[0]
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), zero_fraction)] = 0.0
        layer.set_weights([kernel])
    return cluster.strip(cluster.apply(model, k, preserve_sparsity=True))


def _fine_tune_and_convert(model, scheme, digits, tmp_path):
    import tensorflow as tf

    from tftool.benchmark import sparsity
    from tftool.export import convert
    from tftool.train import fit as trainer

    config = trainer.TrainConfig(epochs=2, per_replica_batch_size=64, learning_rate=1e-3,
                                 lr_schedule="cosine", augment=False)
    wrapped, _ = trainer.train(tf.distribute.get_strategy(), lambda: qat.apply(model, scheme),
                               digits, (8, 8), config, str(tmp_path / scheme))
    content = convert.to_tflite(wrapped, "qat_int8")
    return (sparsity.kernel_sparsity(model_content=content),
            sparsity.kernel_patterns(model_content=content))


def test_pcqat_keeps_zeros_and_clusters_in_every_layer(digits, tmp_path):
    """Regression for tfmot 0.8.1's shared quantizer: the unpruned conv0_0 comes first and
    used to switch sparsity preservation off for conv0_1..conv1_1 (sparsity fell to ~0.05)."""
    model = _pruned_clustered()
    kernels, patterns = _fine_tune_and_convert(model, "cluster_prune_preserve", digits, tmp_path)
    zeros = [round(k["zeros"] / k["size"], 2) for k in kernels]
    assert all(z >= 0.79 for z in zeros[1:4]), zeros
    # BN folded before clustering and per-tensor conv weights: ≤ 8 int8 values per kernel
    assert all(p["unique"] <= 8 for p in patterns[1:]), patterns


def test_cqat_keeps_clusters_where_plain_qat_does_not(digits, tmp_path):
    model = _pruned_clustered()
    _, cqat = _fine_tune_and_convert(model, "cluster_preserve", digits, tmp_path)
    _, plain = _fine_tune_and_convert(model, "default", digits, tmp_path)
    assert all(p["unique"] <= 8 for p in cqat[1:]), cqat
    assert max(p["unique_per_channel"] for p in plain[1:]) > 8


@pytest.mark.parametrize("scheme", ["cluster_preserve", "cluster_prune_preserve"])
def test_cqat_model_loads_by_rebuilding(scheme, tmp_path):
    """keras load_model drops the cluster-preserve quantizers (tfmot 0.8.1), so
    fileio.load_model fails; qat.load rebuilds from the source model and loads the weights."""
    source = _pruned_clustered()
    q = qat.apply(source, scheme)
    rng = np.random.RandomState(0)
    q.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype)
                   if w.dtype == np.float32 else w for w in q.get_weights()])
    path = str(tmp_path / "model.h5")
    workdir.save_model(q, path)
    from tftool import UserError
    # fileio.load_model reports it as an unreadable file, though the file is fine
    with pytest.raises(UserError, match="Weight count mismatch"):
        workdir.load_model(path)
    x = rng.rand(4, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(qat.load(path, source, scheme).predict(x, verbose=0),
                               q.predict(x, verbose=0), atol=1e-6)
