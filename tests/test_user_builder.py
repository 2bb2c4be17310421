"""--model=file.py:function or package.module:function: a builder of the user's, trained,
exported and checked like a built-in one; a builder that cannot be used is one line naming
the fix (models.builder, models.build)."""
import json
import os
import textwrap

import pytest

from inprocess import run_main
from tftool import UserError, models

BUILDERS = textwrap.dedent('''
    import tf_keras as keras


    def tiny(input_shape, num_classes, width=6):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name="tiny")


    def wrong_output(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes + 1)(x))


    def not_a_model(input_shape, num_classes):
        return [input_shape, num_classes]


    def broken(input_shape, num_classes):
        raise ValueError("the backbone needs 224x224 inputs\\nsecond line")
''')


@pytest.fixture
def builders(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(BUILDERS)
    return str(path)


def test_a_user_builder_is_built_with_the_keywords_it_names(builders):
    model = models.build(f"{builders}:tiny", (8, 8, 1), 10, width=4, alpha=0.5)
    assert model.output_shape == (None, 10) and model.layers[1].filters == 4  # width given
    assert models.resolved(f"{builders}:tiny", width=None, alpha=1.0) == {"width": 6,
                                                                         "alpha": 1.0}
    assert models.builder("small_cnn") is models.small_cnn


@pytest.mark.parametrize("spec, message", [
    ("{path}:wrong_output", r"gives \[None, 11\]; it must take \[None, 8, 8, 1\] .* give "
                            r"\[None, 10\] logits"),
    ("{path}:not_a_model", r"returned a builtins.list, not a tf_keras Model"),
    ("{path}:broken", r"raised ValueError: the backbone needs 224x224 inputs$"),
    ("{path}:missing", r"has no function 'missing'; it is called as function\(input_shape"),
    ("{dir}/nothing.py:tiny", r"no such file .*nothing.py"),
    ("no_such_package.mod:tiny", r"importing no_such_package.mod failed: ModuleNotFoundError"),
    ("small_cnm", r"unknown model; use one of small_cnn, .* or a builder of your own as "
                  r"file.py:function"),
])
def test_a_builder_that_cannot_be_used_is_one_line(builders, spec, message):
    with pytest.raises(UserError, match=message) as e:
        models.build(spec.format(path=builders, dir=os.path.dirname(builders)), (8, 8, 1), 10)
    assert "\n" not in str(e.value)


def test_a_user_builder_trains_and_exports_like_a_built_in(builders, tmp_path, tfds_dir):
    workdir, export_dir = str(tmp_path / "w"), str(tmp_path / "e")
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}"]
    result = run_main("train", *common, f"--model={builders}:tiny", "--epochs=2",
                      "--warmup_epochs=0", "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"preset digits (auto: 1-channel images are not photos): {builders}:tiny" in \
        result.stdout
    config = json.load(open(os.path.join(workdir, "float", "config.json")))
    assert config["model"] == f"{builders}:tiny" and config["width"] == 6  # its own default
    result = run_main("export", *common, f"--export_dir={export_dir}",
                      "--variants=float32,int8", "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(f for f in os.listdir(export_dir) if f.endswith(".tflite")) == [
        "digits_tiny_float32.tflite", "digits_tiny_int8.tflite"]  # named for its function
    result = run_main("check", f"--model={builders}:tiny", "--image_size=8", "--channels=1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "quantize: OK, tfmot can quantize every layer" in result.stdout, result.stdout
    # a builder that cannot be used stops tftool-train before any data is read or folder made
    result = run_main("train", f"--workdir={tmp_path}/w2", f"--data_dir={tfds_dir}",
                      f"--model={builders}:nope")
    assert result.returncode == 2 and "has no function 'nope'" in result.stderr
    assert not os.path.exists(f"{tmp_path}/w2")
