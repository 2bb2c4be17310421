import os

import pytest

from conftest import error_lines
from inprocess import run_main
from tftool import models
from tftool.optimize import check


@pytest.fixture(scope="module")
def unsupported_model():
    import tf_keras as keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.PReLU(name="prelu")(x)
    x = keras.layers.LayerNormalization(name="layernorm")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


@pytest.mark.parametrize("name,shape", [("small_cnn", (8, 8, 1)),
                                        ("mobilenet_v2", (32, 32, 3))])
def test_builtin_models_quantize(name, shape):
    model = models.build(name, shape, 10, width=8, alpha=0.35)
    assert check.unsupported_layers(model, "quantize") == []


def test_small_cnn_prunes():
    assert check.unsupported_layers(models.build("small_cnn", (8, 8, 1), 10, width=8),
                                    "prune") == []


def test_mobilenet_rescaling_is_a_prune_warning_not_a_blocker():
    model = models.build("mobilenet_v2", (32, 32, 3), 10, alpha=0.35)
    findings = check.unsupported_layers(model, "prune")
    assert [(f["layer"], f["class"], f["blocking"]) for f in findings] == [
        ("to_minus1_1", "Rescaling", False)]


def test_unsupported_layers_are_named_with_a_fix(unsupported_model):
    quantize = check.unsupported_layers(unsupported_model, "quantize")
    assert [(f["layer"], f["class"]) for f in quantize] == [("prelu", "PReLU"),
                                                           ("layernorm", "LayerNormalization")]
    assert all(f["blocking"] and f["fix"] for f in quantize)
    assert "ReLU" in quantize[0]["fix"]
    prune = check.unsupported_layers(unsupported_model, "prune")
    assert [f["layer"] for f in prune] == ["prelu"]  # LayerNormalization is in PruneRegistry
    lines = check.describe(quantize, "quantize")
    assert lines[0] == "quantize: 2 layer(s) tfmot cannot quantize" and len(lines) == 3
    # the command-line advice names flags and commands, the library advice the code change
    assert "`tftool-export --variants=int8`" in lines[1] and "clone_model" not in lines[1]
    assert "ReLU" in check.describe(quantize, "quantize", audience="library")[1]
    warning = check.describe([dict(prune[0], blocking=False)], "prune")[1]
    assert "nothing to do: tftool-prune wraps only" in warning and "clone_function" not in warning


def test_lambda_and_nested_model_block():
    import tf_keras as keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2, name="double")(inputs)
    inner = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)], name="inner")
    lam = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    findings = check.unsupported_layers(lam, "quantize")
    assert [(f["layer"], f["blocking"]) for f in findings] == [("double", True)]
    nested = keras.Model(inputs, inner(inputs))
    findings = check.unsupported_layers(nested, "quantize")
    assert [(f["layer"], f["blocking"]) for f in findings] == [("inner", True)]
    with pytest.raises(ValueError, match="allowed: quantize, prune"):
        check.unsupported_layers(nested, "cluster")


def test_cli_names_the_layer_and_fails(unsupported_model, tmp_path):
    path = str(tmp_path / "bad.h5")
    unsupported_model.save(path)
    result = run_main("check", f"--model={path}")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "unsupported: prelu (PReLU)" in result.stdout
    assert "quantize: 2 layer(s) tfmot cannot quantize" in result.stdout
    ok = run_main("check", "--model=small_cnn", "--image_size=8", "--channels=1")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "quantize: OK" in ok.stdout and "prune: OK" in ok.stdout


def test_quantize_stops_before_training(unsupported_model, tmp_path):
    from tftool import fileio as workdir

    work = tmp_path / "w"
    unsupported_model.save(str(work / "float" / "model.h5"))
    workdir.write_json(str(work / "float" / "config.json"), {"dataset": "digits",
                                                               "validation_fraction": 0.1})
    result = run_main("quantize", f"--workdir={work}")
    assert result.returncode == 2
    line = error_lines(result.stderr)[-1]
    assert "tfmot cannot quantize 2 layer(s)" in line and "prelu (PReLU)" in line
    assert not os.path.exists(work / "qat" / "model.h5")
