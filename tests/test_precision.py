"""Mixed precision (float16 compute, float32 logits) and float32 saved/exported models."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import UserError, models
from tftool.export import convert
from tftool.train import precision
from tftool.train import fit as trainer
from tftool.litert import Runner


@pytest.fixture
def mixed_policy():
    """mixed_float16 for one test (settable on CPU; only *training* on CPU is refused)."""
    keras.mixed_precision.set_global_policy(precision.MIXED)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name,shape", [("small_cnn", (8, 8, 1)), ("mobilenet_v2", (32, 32, 3))])
def test_mixed_model_keeps_logits_float32(mixed_policy, name, shape):
    model = models.build(name, shape, 10, width=4, alpha=0.35)
    computes = {layer.compute_dtype for layer in model.layers if layer.weights}
    assert "float16" in computes  # the convolutions run in float16
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model.output.dtype == tf.float32
    assert all(w.dtype == tf.float32 for w in model.weights)  # variables stay float32


def test_to_float32_rebuilds_with_the_same_weights_and_exports_no_float16(mixed_policy):
    mixed = models.build("small_cnn", (8, 8, 1), 10, width=4)
    x = np.random.RandomState(0).rand(16, 8, 8, 1).astype(np.float32)
    clean = precision.to_float32(mixed)
    assert precision.is_float32(clean) and not precision.is_float32(mixed)
    for a, b in zip(mixed.get_weights(), clean.get_weights()):
        np.testing.assert_array_equal(a, b)
    # same function up to float16 rounding of the mixed model
    np.testing.assert_allclose(clean(x).numpy(), mixed(x).numpy(), atol=0.05)
    runner = Runner(model_content=convert.to_tflite(clean, "float32"))
    dtypes = {d["dtype"] for d in runner.interpreter.get_tensor_details()}
    assert np.float16 not in dtypes and np.float32 in dtypes
    assert precision.to_float32(clean) is clean


@pytest.fixture
def cpu_only(monkeypatch):
    """This machine seen as GPU-less, whatever it has (the CPU flags are faked per test)."""
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [] if kind == "GPU" else real(kind))
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    yield monkeypatch
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert {"avx2", "avx512_bf16"} <= precision.cpu_flags(str(info))
    assert precision.cpu_flags(str(tmp_path / "absent")) == set()


def test_mixed_precision_picks_bfloat16_on_a_cpu_with_bfloat16_instructions(cpu_only):
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert precision.set_policy(True) == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert precision.set_policy(False) == "float32"
    cpu_only.setattr(precision, "cpu_flags", lambda: {"amx_bf16"})  # Sapphire Rapids
    assert precision.policy_for_this_machine() == "mixed_bfloat16"


def test_mixed_precision_is_refused_on_a_cpu_without_a_fast_path(cpu_only):
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f"})
    with pytest.raises(UserError, match="--mixed_precision needs a GPU or a CPU with bfloat16 "
                                        "instructions .*drop the flag"):
        precision.set_policy(True)
    assert keras.mixed_precision.global_policy().name == "float32"
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    cpu_only.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    with pytest.raises(UserError, match="TF_ENABLE_ONEDNN_OPTS=0 turns off"):
        precision.set_policy(True)


def test_default_picks_bfloat16_only_where_it_was_measured_faster(cpu_only):
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert precision.set_policy(None, "small_cnn") == "mixed_bfloat16"
    assert precision.set_policy(None, "mobilenet_v2") == "float32"  # depthwise: slower
    assert precision.set_policy(False, "small_cnn") == "float32"
    cpu_only.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN, no fast path: not refused
    assert precision.set_policy(None, "small_cnn") == "float32"
    cpu_only.delenv("TF_ENABLE_ONEDNN_OPTS")
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert precision.set_policy(None, "small_cnn") == "float32"
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    cpu_only.setattr(tf.config, "list_physical_devices",
                     lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert precision.set_policy(None, "small_cnn") == "float32"  # GPUs: unmeasured, opt in
    assert precision.set_policy(True, "small_cnn") == "mixed_float16"


def test_policy_for_training_restores_the_policy_before_it(cpu_only):
    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    with precision.policy_for_training(None, "small_cnn") as name:
        assert name == keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError):
        with precision.policy_for_training(True):
            raise RuntimeError("a failed stage")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_train_refuses_mixed_precision_in_one_line_and_writes_nothing(cpu_only, tmp_path):
    from conftest import error_lines
    from inprocess import run_main

    cpu_only.setattr(precision, "cpu_flags", lambda: set())
    result = run_main("train", f"--workdir={tmp_path}/w", "--mixed_precision")
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "tftool-train: error: --mixed_precision needs a GPU or a CPU with bfloat16 instructions "
        "(AVX512_BF16 or AMX_BF16; this one has neither, and emulated 16-bit math is slower "
        "than float32); drop the flag on this machine"], result.stderr[-2000:]
    assert not (tmp_path / "w").exists()


def test_train_under_mixed_bfloat16_learns_and_saves_float32(cpu_only, tmp_path, tfds_dir):
    """The CPU path end to end, as the default picks it for small_cnn on a bfloat16 CPU
    (bfloat16 works on any x86 CPU, natively or emulated, so the machine's flags are faked):
    digits learn, model.h5 computes in float32 and scores the test accuracy metrics.json
    gives, and the mixed policy does not outlive the stage."""
    import json

    from inprocess import run_main
    from tftool import data, evaluate, fileio

    cpu_only.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    result = run_main("train", f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}",
                      "--epochs=6", "--width=8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert keras.mixed_precision.global_policy().name == "float32"
    metrics = json.loads((tmp_path / "w" / "float" / "metrics.json").read_text())
    assert (metrics["dtype_policy"], metrics["mixed_precision"]) == ("mixed_bfloat16", "auto")
    # float32 reaches 0.805 in this setting (bfloat16 0.794 here); chance is 0.10
    assert metrics["test_accuracy"] >= 0.70, metrics
    model = fileio.load_model(str(tmp_path / "w" / "float" / "model.h5"))
    assert precision.is_float32(model)
    dataset = data.load("digits", data_dir=tfds_dir)
    saved = evaluate.keras_metrics(model, dataset, tuple(metrics["input_shape"][:2]))
    assert saved["test_accuracy"] == metrics["test_accuracy"]


def test_linear_scaling_rule():
    # Goyal et al. 2017: k times the batch, k times the learning rate.
    assert trainer.scaled_learning_rate(3e-3, 256, 64) == pytest.approx(1.2e-2)
    assert trainer.scaled_learning_rate(3e-3, 64, 64) == 3e-3
