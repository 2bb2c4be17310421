"""The model zoo's builders (models.resnet8, mobilenet_v3_small/large, efficientnet_lite0) on
tiny settings: the tftool model contract (float32 [N, H, W, C] "image" -> float32 [N, K]
"logits", one flat graph), the published parameter counts, and local weight files."""
import numpy as np
import pytest
import tf_keras as keras

from tftool import UserError, models

SHAPE = (32, 32, 3)
K = 5
# (builder, keyword arguments): the smallest settings of each builder.
TINY = [
    ("resnet8", {"width": 4}),
    ("mobilenet_v3_small", {"alpha": 0.35}),
    ("mobilenet_v3_small", {"alpha": 0.35, "minimalistic": True}),
    ("mobilenet_v3_large", {"alpha": 0.35}),  # minimalistic: the weights test below
    ("efficientnet_lite0", {"width_coefficient": 0.25, "depth_coefficient": 0.5}),
]


def images(n=2, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def features(model):
    """The backbone part of a built model: image -> the logits layer's input."""
    return keras.Model(model.input, model.get_layer(models.HEAD_LAYER).input)


@pytest.mark.parametrize("name,kwargs", TINY, ids=lambda v: str(v))
def test_builds_flat_with_the_model_contract(name, kwargs):
    model = models.build(name, SHAPE, K, **kwargs)
    assert name in models.MODELS and model.name == name
    assert model.input.name == "image" and model.input.dtype == "float32"
    out = model(images(), training=False)
    assert out.shape == (2, K) and out.dtype == "float32"
    assert np.isfinite(out.numpy()).all()
    assert model.layers[-1].name == models.HEAD_LAYER
    # one flat functional graph: tfmot cannot wrap a model nested in a model
    assert not any(hasattr(layer, "layers") for layer in model.layers)
    # tfmot clones models through their config
    clone = keras.Model.from_config(model.get_config())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v3_large",
                                  "efficientnet_lite0"])
def test_rejects_small_inputs(name):
    with pytest.raises(UserError, match="--image_size=32"):
        models.build(name, (28, 28, 1), K)


def test_resnet8_is_the_mlperf_tiny_reference_size():
    # mlcommons/tiny keras_model.py resnet_v1_eembc at 32x32x3, 10 classes: 78,666 weights
    # (convs with bias, 7 BN layers, dense 64 -> 10), counted from the reference definition.
    model = models.resnet8((32, 32, 3), 10)
    assert model.count_params() == 78_666
    assert 75_000 < model.count_params() < 82_000  # the reference's "~78k"
    assert len(model.losses) == 9  # L2 1e-4 on all 9 conv kernels, as the reference
    # width scales the filters: ~4x the weights at twice the width
    assert 3.5 < models.resnet8((32, 32, 3), 10, width=32).count_params() / 78_666 < 4.1


def test_resnet8_rejects_bad_width():
    with pytest.raises(ValueError, match="width"):
        models.resnet8(SHAPE, K, width=0)


def test_efficientnet_lite0_has_the_published_parameter_count():
    # Published EfficientNet-Lite0 (224x224x3, 1000 classes): ~4.65M trainable parameters
    # (4.7M in tensorflow/tpu's lite/README.md with the BN statistics). The count does not
    # depend on H and W, so 32x32 builds faster.
    model = models.efficientnet_lite0((32, 32, 3), 1000)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert abs(trainable - 4.65e6) / 4.65e6 < 0.02
    assert abs(model.count_params() - 4.7e6) / 4.7e6 < 0.02
    # Lite: no squeeze-and-excite, ReLU6 only, stem 32 and head 1280 filters fixed
    kinds = {type(l).__name__ for l in model.layers}
    assert "Multiply" not in kinds and "Activation" not in kinds
    assert {float(l.max_value) for l in model.layers
            if isinstance(l, keras.layers.ReLU)} == {6.0}
    thin = models.efficientnet_lite0((32, 32, 3), 10, width_coefficient=0.5)
    assert thin.get_layer("stem_conv").filters == 32
    assert thin.get_layer("top_conv").filters == 1280


@pytest.mark.parametrize("name,application,minimalistic", [
    ("mobilenet_v3_small", "MobileNetV3Small", False),
    ("mobilenet_v3_large", "MobileNetV3Large", True),
])
def test_mobilenet_v3_loads_local_backbone_weights(tmp_path, name, application, minimalistic):
    app = getattr(keras.applications, application)
    backbone = app(weights=None, include_top=False, pooling="avg", alpha=0.35,
                   minimalistic=minimalistic, input_shape=SHAPE)
    path = str(tmp_path / "backbone.h5")
    backbone.save_weights(path)
    model = models.build(name, SHAPE, K, alpha=0.35, minimalistic=minimalistic, weights=path)
    assert model.count_params() == backbone.count_params() + (backbone.output_shape[-1] + 1) * K
    x = images()
    # the builder's [0, 1] -> [-1, 1] equals keras.applications' own 0..255 preprocessing
    np.testing.assert_allclose(features(model)(x, training=False),
                               backbone(x * 255.0, training=False), rtol=1e-4, atol=1e-5)
    # another alpha's file, another variant's file, a missing file: one UserError each
    with pytest.raises(UserError, match="does not fit .*alpha"):
        models.build(name, SHAPE, K, alpha=0.5, minimalistic=minimalistic, weights=path)
    with pytest.raises(UserError, match="does not fit"):
        models.build(name, SHAPE, K, alpha=0.35, minimalistic=not minimalistic, weights=path)
    with pytest.raises(UserError, match="no such weights file"):
        models.build(name, SHAPE, K, weights=str(tmp_path / "missing.h5"))


def test_mobilenet_v3_imagenet_errors(monkeypatch):
    with pytest.raises(UserError, match="--channels=3"):
        models.mobilenet_v3_small((32, 32, 1), K, weights="imagenet")
    with pytest.raises(UserError, match="--alpha"):
        models.mobilenet_v3_small(SHAPE, K, alpha=0.35, weights="imagenet")
    with pytest.raises(UserError, match="--alpha"):
        models.mobilenet_v3_large(SHAPE, K, alpha=0.75, minimalistic=True, weights="imagenet")

    # No network in tests: fail the download the way keras.utils.get_file does offline.
    from tf_keras.src.utils import data_utils

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- no network")

    monkeypatch.setattr(data_utils, "get_file", offline)
    with pytest.raises(UserError, match="download failed.*--weights=PATH"):
        models.mobilenet_v3_small(SHAPE, K, weights="imagenet")


LITE = {"width_coefficient": 0.25, "depth_coefficient": 0.5}


@pytest.mark.parametrize("file_name", ["lite.h5", "lite_ckpt"])
def test_efficientnet_lite0_weights_round_trip(tmp_path, file_name):
    model = models.build("efficientnet_lite0", SHAPE, K, **LITE)
    path = str(tmp_path / file_name)  # HDF5, or a TF checkpoint (no .h5)
    model.save_weights(path)
    loaded = models.build("efficientnet_lite0", SHAPE, K, weights=path, **LITE)
    x = images()
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


def test_efficientnet_lite0_weights_for_another_number_of_classes(tmp_path):
    model = models.build("efficientnet_lite0", SHAPE, K, **LITE)
    path = str(tmp_path / "lite.h5")
    model.save_weights(path)
    other = models.build("efficientnet_lite0", SHAPE, 3, weights=path, **LITE)
    x = images()
    # everything but the head is loaded; the 3-class head is fresh
    np.testing.assert_array_equal(features(other)(x, training=False),
                                  features(model)(x, training=False))
    assert other(x).shape == (2, 3)


def test_efficientnet_lite0_rejects_weights_that_do_not_fit(tmp_path):
    wide = str(tmp_path / "wide.h5")
    models.build("efficientnet_lite0", SHAPE, K, width_coefficient=0.5,
                 depth_coefficient=0.5).save_weights(wide)
    with pytest.raises(UserError, match="does not fit .*width_coefficient=0.25.*shapes"):
        models.build("efficientnet_lite0", SHAPE, K, weights=wide, **LITE)
    deep = str(tmp_path / "deep.h5")
    models.build("efficientnet_lite0", SHAPE, K, width_coefficient=0.25).save_weights(deep)
    with pytest.raises(UserError, match="layers the model lacks: block2b"):
        models.build("efficientnet_lite0", SHAPE, K, weights=deep, **LITE)
    other = str(tmp_path / "resnet8.h5")
    models.build("resnet8", SHAPE, K, width=4).save_weights(other)
    with pytest.raises(UserError, match="layers missing from the file: block1a_dwconv"):
        models.build("efficientnet_lite0", SHAPE, K, weights=other, **LITE)
    ckpt = str(tmp_path / "resnet8_ckpt")
    models.build("resnet8", SHAPE, K, width=4).save_weights(ckpt)
    with pytest.raises(UserError, match="does not fit efficientnet_lite0"):
        models.build("efficientnet_lite0", SHAPE, K, weights=ckpt, **LITE)
    with pytest.raises(UserError, match="no such weights file"):
        models.build("efficientnet_lite0", SHAPE, K, weights=str(tmp_path / "none.h5"))
    with pytest.raises(UserError, match="no EfficientNet-Lite"):
        models.build("efficientnet_lite0", SHAPE, K, weights="imagenet")


# (MobileNetV3 minimalistic wraps too, measured; the default MobileNetV3 does not: its
# hard-swish is TFOpLambda layers, see models.mobilenet_v3_small.)
@pytest.mark.parametrize("name,kwargs", [("resnet8", {"width": 4}), ("efficientnet_lite0", LITE)],
                         ids=lambda v: str(v))
def test_quantization_aware_training_wraps_every_layer(name, kwargs):
    from tftool.optimize import check, qat

    model = models.build(name, SHAPE, K, **kwargs)
    assert [f for f in check.unsupported_layers(model, "prune") if f["blocking"]] == []
    wrapped = qat.apply(model)
    assert wrapped(images(), training=False).shape == (2, K)


def test_resnet8_int8_is_the_mlperf_tiny_size():
    from tftool.export import convert

    model = models.resnet8((32, 32, 3), 10)
    calibration = images(4, seed=1)
    flatbuffer = convert.to_tflite(model, "int8", lambda: ([x[None]] for x in calibration))
    # the reference's int8 .tflite is 98,496 bytes; ours adds the [0, 1] input FakeQuant and
    # the softmax (measured: 92,712 bytes with TF 2.21)
    assert 80_000 < len(flatbuffer) < 110_000


def test_macs_match_the_published_counts():
    # MobileNetV2 1.0 at 224: 300M mult-adds (Sandler et al. 2018, Table 4); ResNet-8 at 32:
    # 12.5M (MLPerf Tiny's image classification reference)
    assert models.macs(models.build("mobilenet_v2", (224, 224, 3), 1000)) == pytest.approx(
        300e6, rel=0.01)
    assert models.macs(models.build("resnet8", (32, 32, 3), 10)) == pytest.approx(12.5e6,
                                                                                 rel=0.01)
