"""export/debug.py: quantization debugger statistics and selective int8 on a model built to
break int8."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import UserError, data, internals, models
from tftool.export import convert, debug
from tftool.litert import Runner, to_pixels
from tftool.train import fit as trainer


def with_activation_outlier(model, scale=1000.0, channel=0):
    """Same float function, int8-hostile: channel `channel` of small_cnn's last conv block is
    `scale`× larger (BN gamma and beta × scale; ReLU commutes with a positive scale) and the
    logits kernel row that reads it is ÷ scale. The per-tensor int8 range of that activation
    and of the pooled features grows ~scale×, so every other channel rounds to zero.
    The last block is the last BatchNormalization layer: bn1_1 at 8x8 (2 stages), bn2_1 at
    28x28 (3 stages)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    bn = [layer for layer in copy.layers
          if isinstance(layer, keras.layers.BatchNormalization)][-1]
    gamma, beta, mean, var = bn.get_weights()
    gamma[channel] *= scale
    beta[channel] *= scale
    bn.set_weights([gamma, beta, mean, var])
    logits = copy.get_layer("logits")
    kernel, bias = logits.get_weights()
    kernel[channel, :] /= scale
    logits.set_weights([kernel, bias])
    return copy


@pytest.fixture(scope="module")
def setup(digits, tmp_path_factory):
    config = trainer.TrainConfig(epochs=12, per_replica_batch_size=64, learning_rate=5e-3,
                                 lr_schedule="cosine", augment=False)
    model, _ = trainer.train(tf.distribute.get_strategy(),
                             lambda: models.build("small_cnn", (8, 8, 1), 10, width=8), digits,
                             (8, 8), config, str(tmp_path_factory.mktemp("float")))
    x, y = data.test_arrays(digits, (8, 8))
    float_acc = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))

    def accuracy(content):
        return float(np.mean(np.argmax(Runner(model_content=content)(to_pixels(x)), -1) == y))

    def gate(content):  # the export gate: at most 1 point below float
        return accuracy(content) >= float_acc - 0.01

    rep = data.representative_dataset(digits, (8, 8), 100)
    return model, with_activation_outlier(model), rep, accuracy, gate, float_acc


def test_outlier_model_is_float_equal_and_breaks_int8(setup, digits):
    model, broken, rep, accuracy, _, float_acc = setup
    assert float_acc >= 0.95
    x, _ = data.test_arrays(digits, (8, 8))
    np.testing.assert_allclose(broken.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-3)
    assert accuracy(convert.to_tflite(broken, "int8", rep)) < float_acc - 0.01
    # 16-bit activations have the resolution to carry the outlier
    # (measured: 0.9777 vs float 0.9889 and int8's 0.10)
    assert accuracy(convert.to_tflite(broken, "int16x8", rep)) >= float_acc - 0.02


def test_layer_errors_rank_the_outlier_tensors_first(setup):
    _, broken, rep, _, _, _ = setup
    rows = debug.layer_errors(broken, rep)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert [r["layers"] for r in rows[:3]] == [["conv1_1", "bn1_1", "relu1_1"], ["gap"],
                                               ["logits"]]
    assert rows[0]["range_ratio"] > 100 and rows[1]["range_ratio"] > 100
    assert rows[2]["rmse_scale"] > 3 * debug.ROUNDING_RMSE_SCALE  # the FC reads the damage
    assert all(r["score"] < 10 for r in rows[3:])
    assert {r["op"] for r in rows} >= {"CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED",
                                       "SOFTMAX"}
    assert [r["layers"] for r in rows if r["op"] == "SOFTMAX"] == [[]]  # added by the export


def test_selective_int8_keeps_the_chain_in_float_and_passes_the_gate(setup):
    _, broken, rep, accuracy, gate, float_acc = setup
    content, kept = debug.selective_int8(broken, rep, gate, budget=3)
    assert [r["layers"] for r in kept] == [["conv1_1", "bn1_1", "relu1_1"], ["gap"],
                                           ["logits"]]
    assert accuracy(content) >= float_acc - 0.01
    runner = Runner(model_content=content)  # as app-ready as the int8 export
    assert runner.input_shape == (8, 8, 3) and runner.outputs_probabilities
    assert runner.input_dtype == np.float32  # float ends: the float layers may sit there
    ops = [o["op_name"] for o in internals.ops_details(runner.interpreter)]
    # rgb_to_gray + 4 convs; one DEQUANTIZE before the float conv1_1, one for the output
    assert ops.count("CONV_2D") == 5 and ops.count("DEQUANTIZE") == 2
    with pytest.raises(UserError, match=r"still fails the accuracy gate with 2 layer\(s\) kept "
                                        r"in float \(CONV_2D conv1_1\+bn1_1\+relu1_1, MEAN gap\)"):
        debug.selective_int8(broken, rep, gate, budget=2)


def test_selective_int8_of_a_healthy_model_keeps_nothing(setup):
    model, _, rep, _, gate, _ = setup
    _, kept = debug.selective_int8(model, rep, gate)
    assert kept == []
    with pytest.raises(ValueError, match="budget=-1"):
        debug.selective_int8(model, rep, gate, budget=-1)


def test_export_ships_int8_selective_when_the_gate_refuses_int8(setup, tmp_path, tfds_dir):
    """tftool-export end to end: the int8-breaking model's int8 is refused, the export keeps
    its worst layers in float, writes int8_selective naming them, and exits 0."""
    import json
    import os

    from inprocess import run_main
    from tftool import fileio

    _, broken, _, _, _, float_acc = setup
    common = [f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}"]
    result = run_main("train", *common, "--epochs=1", "--width=8", "--warmup_epochs=0")
    assert result.returncode == 0, result.stderr[-3000:]
    fileio.save_model(broken, str(tmp_path / "w" / "float" / "model.h5"))  # the stage's model now
    result = run_main("export", *common, f"--export_dir={tmp_path}/e", "--variants=int8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused int8" in result.stdout and "trying int8_selective" in result.stdout
    assert not os.path.exists(tmp_path / "e" / "digits_small_cnn_int8.tflite")
    card = json.loads((tmp_path / "e" / "digits_small_cnn_int8_selective.json").read_text())
    assert 1 <= len(card["layers_kept_float"]) <= 3
    assert card["test_accuracy"] >= card["accuracy_gate"]["reference_accuracy"] - 0.01
    assert card["metadata"]["embedded"] and card["input"]["dtype"] == "float32"
