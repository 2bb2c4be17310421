"""tftool-import: a model trained outside tftool (Keras 3 or tf_keras) becomes WORKDIR/float,
rebuilt flat in tf_keras with its weights, its outputs checked against the original's, then
QAT'd and exported like a model tftool trained; a model it cannot take is one line."""
import json
import os

import numpy as np
import pytest

from inprocess import run_main
from mediapipe_client import mediapipe_python  # noqa: F401  (fixture)


def _digits_arrays(digits, split, size=(8, 8), channels=1):
    from tftool import data

    xs, ys = [], []
    for x, y in data.test_batches(digits, size, split=split):
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs).astype(np.float32)
    if channels == 3:
        x = np.repeat(x, 3, axis=-1)
    return x, np.concatenate(ys)  # pixels 0-255, as a Keras user's pipeline gives them


def _keras3_cnn():
    """The layers the issue lists: Rescaling, Conv2D, DepthwiseConv2D, BatchNormalization,
    ReLU and ReLU6, Add, pooling, Dropout, Dense (softmax), in Keras 3."""
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.1)(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@pytest.fixture(scope="module")
def keras3_file(tmp_path_factory, digits):
    """A Keras 3 CNN trained on the digits' train split, saved as .keras; with its own test
    accuracy computed by Keras 3."""
    import keras

    keras.utils.set_random_seed(0)
    model = _keras3_cnn()
    x, y = _digits_arrays(digits, "train")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=64, verbose=0)
    path = str(tmp_path_factory.mktemp("keras3") / "digits_cnn.keras")
    model.save(path)
    tx, ty = _digits_arrays(digits, "test")
    accuracy = float(np.mean(np.argmax(model.predict(tx, verbose=0), -1) == ty))
    return path, accuracy


def test_a_keras3_model_imports_exact_and_its_qat_int8_loads_in_mediapipe(
        keras3_file, digits, tfds_dir, tmp_path, mediapipe_python):
    import app_checks

    from tftool.litert import Runner

    path, original = keras3_file
    assert original > 0.9  # learnable: the rest of the test means something
    workdir, export_dir = str(tmp_path / "wd"), str(tmp_path / "exported")
    common = (f"--workdir={workdir}", f"--data_dir={tfds_dir}")
    result = run_main("import_model", f"--keras_model={path}", *common)
    assert result.returncode == 0, result.stderr
    assert "Keras 3 .keras" in result.stdout and "input range 0-255" in result.stdout
    assert "softmax output removed" in result.stdout
    metrics = json.load(open(os.path.join(workdir, "float", "metrics.json")))
    imported = metrics["imported"]
    assert imported["max_output_difference"] <= 1e-5 and imported["compared_images"] == 100
    assert imported["input_range"] == "0_255" and imported["softmax_removed"]
    # the same model: the same test accuracy as Keras 3 scored it (up to one image's tie)
    assert abs(metrics["test_accuracy"] - original) <= 1 / 359 + 1e-9
    config = json.load(open(os.path.join(workdir, "float", "config.json")))
    assert config["model"] == "import:digits_cnn" and config["image_size"] == 8

    # a re-run is a skip; another file is refused without --overwrite, nothing written
    again = run_main("import_model", f"--keras_model={path}", *common)
    assert again.returncode == 0 and "complete, skipped" in again.stdout
    other = str(tmp_path / "other.keras")
    _keras3_cnn().save(other)
    before = open(os.path.join(workdir, "float", "metrics.json")).read()
    refused = run_main("import_model", f"--keras_model={other}", *common)
    assert refused.returncode == 2 and "pass --overwrite to import over it" in refused.stderr
    assert open(os.path.join(workdir, "float", "metrics.json")).read() == before
    again = run_main("import_model", f"--keras_model={path}", *common, "--overwrite")
    assert again.returncode == 0 and "outputs match the original" in again.stdout

    result = run_main("quantize", *common, "--epochs=1")
    assert result.returncode == 0, result.stderr
    result = run_main("export", *common, f"--export_dir={export_dir}",
                      "--variants=float32,int8,qat_int8")
    assert result.returncode == 0, result.stderr
    name = "digits_digits_cnn"
    tx, ty = _digits_arrays(digits, "test")
    for variant in ("int8", "qat_int8"):
        scores = Runner(model_path=os.path.join(export_dir, f"{name}_{variant}.tflite"))(
            tx.astype(np.uint8))
        accuracy = float(np.mean(scores.argmax(-1) == ty))
        assert accuracy >= original - 0.03, (variant, accuracy, original)
    paths, pixels, labels = app_checks.write_rgb_pngs(digits, (8, 8), tmp_path / "png", 100)
    app_checks.check_exports(mediapipe_python, export_dir, name, paths, pixels, labels,
                             digits.class_names, min_accuracy=original - 0.05)


def test_a_nested_keras3_mobilenet_v2_is_flattened_and_exports(digits, tfds_dir, tmp_path):
    """keras.applications' backbone inside a model of the user's (a new head): imported flat,
    tfmot-ready, exported. Untrained: BN statistics are perturbed so the comparison of the
    rebuilt model with the original means something."""
    import keras

    from tftool import fileio
    from tftool.litert import Runner
    from tftool.optimize import check

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False,
                                          weights=None, alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))  # untrained: the rebuild is the test
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 2, variance.shape).astype(np.float32)])
    path = str(tmp_path / "mobilenet_v2_head.keras")
    model.save(path)
    workdir, export_dir = str(tmp_path / "wd"), str(tmp_path / "exported")
    common = (f"--workdir={workdir}", f"--data_dir={tfds_dir}")
    # untrained: the range is given, and the model is near chance on this data
    result = run_main("import_model", f"--keras_model={path}", *common, "--channels=3",
                      "--input_range=0_255", "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr
    assert "1 augmentation layers left out" in result.stdout
    flat = fileio.load_model(os.path.join(workdir, "float", "model.h5"))
    assert not any(hasattr(layer, "layers") for layer in flat.layers)  # no nested model
    assert len(flat.layers) > 150 and flat.input_shape == (None, 32, 32, 3)
    assert not [f for f in check.unsupported_layers(flat, "quantize") if f["blocking"]]
    result = run_main("export", *common, f"--export_dir={export_dir}", "--variants=float32",
                      "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr
    runner = Runner(model_path=os.path.join(export_dir,
                                            "digits_mobilenet_v2_head_float32.tflite"))
    assert tuple(runner.input_shape)[-3:-1] == (32, 32)


def test_a_tf_keras_h5_taking_minus1_1_gets_its_range_from_the_data(digits, tfds_dir,
                                                                      tmp_path):
    """No Rescaling in the model: the range is found by the data and put in front."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(10)])
    x, y = _digits_arrays(digits, "train")
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x / 127.5 - 1, y, epochs=10, batch_size=64, verbose=0)
    path = str(tmp_path / "seq.h5")
    model.save(path)
    workdir = str(tmp_path / "wd")
    result = run_main("import_model", f"--keras_model={path}", f"--workdir={workdir}",
                      f"--data_dir={tfds_dir}")
    assert result.returncode == 0, result.stderr
    assert "HDF5" in result.stdout and "input range -1-1" in result.stdout
    metrics = json.load(open(os.path.join(workdir, "float", "metrics.json")))
    assert metrics["test_accuracy"] > 0.9 and metrics["imported"]["max_output_difference"] < 1e-5


@pytest.mark.parametrize("case, message", [
    ("missing", r"--keras_model=.*missing.keras: no such file or folder"),
    ("classes", r"has 3 outputs and --dataset=digits has 10 classes"),
    ("channels", r"takes 3-channel images and --dataset=digits has 1: pass --channels=3"),
    ("untrained", r"no better than chance in any input range"),
    ("text", r"is not a readable .keras file"),
])
def test_a_model_it_cannot_take_is_one_line_and_writes_nothing(case, message, tfds_dir,
                                                                 tmp_path):
    import re

    import keras

    from conftest import error_lines

    path = str(tmp_path / f"{case}.keras")
    if case in ("classes", "channels"):
        shape, classes = ((8, 8, 3), 10) if case == "channels" else ((8, 8, 1), 3)
        inputs = keras.Input(shape)
        outputs = keras.layers.Dense(classes)(keras.layers.Flatten()(inputs))
        keras.Model(inputs, outputs).save(path)
    elif case == "untrained":
        inputs = keras.Input((8, 8, 1))
        keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(path)
    elif case == "text":
        open(path, "w").write("not a zip")
    workdir = str(tmp_path / "wd")
    result = run_main("import_model", f"--keras_model={path}", f"--workdir={workdir}",
                      f"--data_dir={tfds_dir}")
    lines = error_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not os.path.exists(os.path.join(workdir, "float", "model.h5"))


def test_tftool_check_says_before_import_what_tfmot_will_meet(keras3_file, tmp_path):
    import keras

    path, _ = keras3_file
    result = run_main("check", f"--keras_model={path}")
    assert result.returncode == 0, result.stderr
    assert "Keras 3 .keras, rebuilt flat as tftool-import does" in result.stdout
    assert "quantize: OK" in result.stdout

    code = tmp_path / "my_layers.py"
    code.write_text(SUBCLASSED)
    from tftool import models

    module = models.user_module(str(code), "--custom_objects")
    model = module.TwoConv()
    model(np.zeros((1, 8, 8, 1), np.float32))
    saved = str(tmp_path / "sub.keras")
    model.save(saved)
    keras.saving.get_custom_objects().clear()  # as a fresh process sees it: not registered
    result = run_main("check", f"--keras_model={saved}")
    assert result.returncode == 2 and "needs the class 'TwoConv'" in result.stderr
    assert "pass --custom_objects=file.py" in result.stderr
    result = run_main("check", f"--keras_model={saved}", f"--custom_objects={code}",
                      "--image_size=8", "--channels=1")
    assert result.returncode == 1 and "keeps it whole as a SavedModel" in result.stdout


def test_a_keras3_sequential_without_an_input_layer_rebuilds_exactly():
    """Sequential models built from a shape (no keras.Input) and nested in a functional one:
    the same outputs from the flat tf_keras model."""
    import keras

    from tftool import rebuild

    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu6"),
                              keras.layers.BatchNormalization(),
                              keras.layers.Flatten()])
    inner.build((None, 8, 8, 1))
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(3)(inner(inputs))
    model = keras.Model(inputs, outputs)
    flat, dropped = rebuild.flat_model(model)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    assert not dropped and not any(hasattr(layer, "layers") for layer in flat.layers)
    np.testing.assert_allclose(flat(x).numpy(), model(x).numpy(), atol=1e-6)


SUBCLASSED = '''
import keras


@keras.saving.register_keras_serializable(package="tftool_test")
class TwoConv(keras.Model):
    """A subclassed classifier: no layer graph for tfmot or for a rebuild."""

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.conv1 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")
        self.conv2 = keras.layers.Conv2D(32, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(classes, activation="softmax")

    def call(self, x, training=False):
        return self.head(self.pool(self.conv2(self.conv1(x / 255.0))))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
'''


def test_a_subclassed_model_ships_every_post_training_variant_under_make(
        digits, tfds_dir, tmp_path, monkeypatch):
    """Kept whole as a SavedModel: imported (--custom_objects registers its class), the tfmot
    stages skipped with one line each and exit 0 under make, every post-training variant
    exported and agreeing with the float model."""
    import keras

    from tftool import models
    from tftool.litert import Runner

    code = tmp_path / "my_layers.py"
    code.write_text(SUBCLASSED)
    module = models.user_module(str(code), "--custom_objects")
    keras.utils.set_random_seed(0)
    model = module.TwoConv()
    x, y = _digits_arrays(digits, "train")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    path = str(tmp_path / "two_conv.keras")
    model.save(path)
    workdir, export_dir = str(tmp_path / "wd"), str(tmp_path / "exported")
    common = (f"--workdir={workdir}", f"--data_dir={tfds_dir}")
    result = run_main("import_model", f"--keras_model={path}", f"--custom_objects={code}",
                      *common)
    assert result.returncode == 0, result.stderr
    assert "subclassed: kept whole as a SavedModel" in result.stdout
    assert "input range 0-255" in result.stdout and "softmax output removed" in result.stdout
    metrics = json.load(open(os.path.join(workdir, "float", "metrics.json")))
    assert metrics["imported"]["subclassed"] and metrics["test_accuracy"] > 0.85
    assert metrics["imported"]["max_output_difference"] <= 1e-5

    monkeypatch.setenv("TFTOOL_SHARED_FLAGS", "1")  # as make runs every stage
    for stage, args in (("quantize", ()), ("prune", ())):
        result = run_main(stage, *common, "--epochs=1", *args)
        skipped = [line for line in result.stdout.splitlines() if "skipped:" in line]
        assert result.returncode == 0 and len(skipped) == 1, (stage, result.stdout,
                                                              result.stderr)
        assert "still works: every post-training variant" in skipped[0]
    result = run_main("export", *common, f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr
    tx, ty = _digits_arrays(digits, "test")
    for variant in ("float32", "float16", "dynamic_range", "int8", "int16x8"):
        scores = Runner(model_path=os.path.join(export_dir, f"digits_two_conv_{variant}.tflite"))(
            tx.astype(np.uint8))
        accuracy = float(np.mean(scores.argmax(-1) == ty))
        assert accuracy >= metrics["test_accuracy"] - 0.03, (variant, accuracy)


def test_a_model_that_saw_the_validation_images_is_named_so():
    """Validation above test beyond both intervals: the choices made on validation would be
    optimistic, and import says so; overlapping intervals say nothing."""
    from types import SimpleNamespace

    from tftool import importer

    dataset = SimpleNamespace(validation_split={"source": "train"})
    seen = {"validation_accuracy": 0.897, "validation_accuracy_interval": [0.877, 0.914],
            "test_accuracy": 0.762, "test_accuracy_interval": [0.743, 0.780]}
    note = importer.validation_seen(seen, dataset)
    assert "probably trained on the validation images" in note and "validation/ folder" in note
    close = {**seen, "validation_accuracy_interval": [0.77, 0.91]}
    assert importer.validation_seen(close, dataset) is None


def test_a_layer_that_computes_differently_in_tf_keras_is_refused(tfds_dir, tmp_path):
    """Keras 3's hard_sigmoid is relu6(x + 3) / 6, tf_keras's clip(0.2 x + 0.5): the same
    name, other numbers. The output comparison is what catches it; nothing is written."""
    import keras

    from conftest import error_lines

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(16, activation="hard_sigmoid")(keras.layers.Flatten()(inputs))
    path = str(tmp_path / "hard_sigmoid.keras")
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(path)
    workdir = str(tmp_path / "wd")
    result = run_main("import_model", f"--keras_model={path}", f"--workdir={workdir}",
                      f"--data_dir={tfds_dir}", "--input_range=0_255")
    lines = error_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "the rebuilt model's probabilities differ from the original's" in lines[0]
    assert not os.path.exists(os.path.join(workdir, "float", "model.h5"))


def test_keras3_operators_and_a_shared_rescaling_rebuild_exactly():
    """`x + y`, `x * 2.0` and `x - 1.0` in a Keras 3 graph are operations, not layers: rebuilt
    as tf_keras Add / Rescaling. A Rescaling called twice is not folded into (its second
    call would change): the range goes in front instead."""
    import keras

    from tftool import input_range, rebuild

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    scale = keras.layers.Rescaling(1 / 255.0)
    x = scale(inputs)
    a = keras.layers.Conv2D(4, 3, padding="same")(x)
    b = keras.layers.Conv2D(4, 3, padding="same")(x)
    y = (a + b) * 2.0 - 1.0
    y = scale(y * 255.0)  # the same Rescaling again
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(y)))
    flat, _ = rebuild.flat_model(model)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(flat(pixels).numpy(), model(pixels).numpy(), atol=1e-5)
    contract, _ = input_range.to_contract(flat, "0_255")
    assert input_range.RANGE_LAYER in [layer.name for layer in contract.layers]
    np.testing.assert_allclose(contract(pixels / 255.0).numpy(), model(pixels).numpy(),
                               atol=1e-4)


def test_a_0_255_range_folds_into_the_first_kernel_exactly():
    """No Rescaling and a Conv2D reading the input: the kernel times 255 on [0, 1] computes
    what the model computed on 0-255 (zero padding included), with no layer in front; with a
    kernel regularizer (whose penalty the scaled kernel would change) a layer goes in front."""
    import tf_keras as keras

    from tftool import input_range

    for regularizer in (None, "l2"):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(4, 3, padding="same", kernel_regularizer=regularizer)(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
        contract, _ = input_range.to_contract(model, "0_255")
        names = [layer.name for layer in contract.layers]
        assert (input_range.RANGE_LAYER in names) == (regularizer is not None)
        pixels = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype(np.float32)
        np.testing.assert_allclose(contract(pixels / 255.0).numpy(), model(pixels).numpy(),
                                   rtol=1e-5, atol=1e-4)
