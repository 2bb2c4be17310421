"""ONNX beside LiteRT (tftool/onnx_runtime.py): float32 and int8 ONNX exports of a small trained
digits classifier agree with the Keras model, and the ONNX Runtime runner behaves as
litert.Runner does for evaluation, threads, timing and damaged files."""
import numpy as np
import pytest

from tftool import UserError, data, evaluate, onnx_runtime
from tiny_classifier import trained_gray_small_cnn

pytestmark = pytest.mark.skipif(not onnx_runtime.available(),
                                reason="the tftool[onnx] extra is not installed")

IMAGE_SIZE = (8, 8)


@pytest.fixture(scope="module")
def exported(digits):
    """(Keras small_cnn width 8 on gray digits, float32 ONNX bytes, int8 ONNX bytes)."""
    model = trained_gray_small_cnn(digits)
    float_bytes = onnx_runtime.to_onnx_float32(model)
    int8_bytes = onnx_runtime.to_onnx_int8(
        float_bytes, data.representative_dataset(digits, IMAGE_SIZE, 100))
    return model, float_bytes, int8_bytes


@pytest.fixture(scope="module")
def results(digits, exported):
    """evaluate.evaluate of Keras (the reference), float32 and int8 ONNX on the test split."""
    model, float_bytes, int8_bytes = exported
    scorers = {"keras": evaluate.keras_scorer(model),
               "float32": evaluate.tflite_scorer(onnx_runtime.Runner(model_content=float_bytes)),
               "int8": evaluate.tflite_scorer(onnx_runtime.Runner(model_content=int8_bytes))}
    return evaluate.evaluate(scorers, data.test_batches(digits, IMAGE_SIZE),
                             digits.class_names, reference="keras")


def test_float32_agrees_with_keras(digits, exported, results):
    model, float_bytes, _ = exported
    assert results["keras"]["accuracy"] > 0.9  # the model learned something
    assert results["float32"]["agreement"] >= 0.99
    runner = onnx_runtime.Runner(model_content=float_bytes)
    assert runner.input_shape == (8, 8, 1) and runner.input_dtype == np.float32
    assert runner.input_name == "image" and runner.outputs_probabilities
    worst = 0.0
    for pixels, _ in data.test_batches(digits, IMAGE_SIZE, batch_size=100):
        probs = runner(pixels, batch_size=33)  # a remainder batch: the batch is dynamic
        keras_logits = model(pixels.astype(np.float32) / 255.0, training=False).numpy()
        assert probs.dtype == np.float32 and probs.shape == keras_logits.shape
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        worst = max(worst, float(np.abs(probs - evaluate.softmax(keras_logits)).max()))
    assert worst <= 1e-4


def test_int8_agrees_with_keras(results):
    assert results["int8"]["agreement"] >= 0.95
    assert results["int8"]["accuracy"] >= results["float32"]["accuracy"] - 0.03


def test_int8_is_qdq_with_pixel_input_and_float_softmax(digits, exported):
    import onnx

    _, _, int8_bytes = exported
    graph = onnx.load_from_string(int8_bytes).graph
    values = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    ops = [n.op_type for n in graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    conv_weights = [values[n.input[0]] for n in graph.node if n.op_type == "DequantizeLinear"
                    and n.input[0] in values and values[n.input[0]].ndim == 4]
    assert conv_weights and all(w.dtype == np.int8 for w in conv_weights)
    # The first activation quantization is the pixels: uint8, scale 1/255, zero point 0.
    first = next(n for n in graph.node if n.op_type == "QuantizeLinear")
    assert values[first.input[2]].dtype == np.uint8 and int(values[first.input[2]]) == 0
    assert float(values[first.input[1]]) == pytest.approx(1 / 255, rel=1e-6)
    # The softmax runs in float after the last DequantizeLinear: probabilities sum to 1.
    assert ops[-1] == "Softmax"
    pixels, _ = next(iter(data.test_batches(digits, IMAGE_SIZE)))
    probs = onnx_runtime.Runner(model_content=int8_bytes)(pixels)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_int8_needs_opset_13(digits, exported):
    model = exported[0]
    old = onnx_runtime.to_onnx_float32(model, opset=12)
    with pytest.raises(ValueError, match="opset 12"):
        onnx_runtime.to_onnx_int8(old, data.representative_dataset(digits, IMAGE_SIZE, 4))


def test_threads_give_the_same_outputs(digits, exported):
    _, float_bytes, int8_bytes = exported
    pixels, _ = next(iter(data.test_batches(digits, IMAGE_SIZE)))
    for content in (float_bytes, int8_bytes):
        one = onnx_runtime.Runner(model_content=content, num_threads=1)
        two = onnx_runtime.Runner(model_content=content, num_threads=2)
        assert one.session.get_session_options().intra_op_num_threads == 1
        assert two.session.get_session_options().intra_op_num_threads == 2
        np.testing.assert_allclose(one(pixels), two(pixels), rtol=0, atol=1e-6)


def test_set_input_invoke_and_latency(digits, exported, tmp_path):
    _, float_bytes, _ = exported
    path = tmp_path / "digits_float32.onnx"
    path.write_bytes(float_bytes)
    runner = onnx_runtime.Runner(model_path=str(path), num_threads=1)
    pixels, _ = next(iter(data.test_batches(digits, IMAGE_SIZE)))
    runner.set_input(pixels[:5])
    runner.invoke()
    np.testing.assert_allclose(runner.output(), runner(pixels[:5]), atol=1e-6)
    # A 3-channel image given to a 1-channel model is refused, a 1-channel one to RGB fine.
    with pytest.raises(ValueError, match="channel"):
        runner(np.repeat(pixels[:1], 2, axis=-1))
    with pytest.raises(ValueError, match="uint8"):
        runner(pixels[:1].astype(np.float32))
    timing = {"min_runs": 20, "min_seconds": 0.05, "warmup_runs": 1, "warmup_seconds": 0.01}
    for batch_size in (1, 4):
        stats = onnx_runtime.onnx_latency(runner, batch_size=batch_size, **timing)
        assert stats["latency_ms_p50"] > 0 and stats["timed_runs"] >= timing["min_runs"]
        assert stats["latency_ms_p99"] >= stats["latency_ms_p50"]
        assert runner.batch_size == batch_size


@pytest.mark.parametrize("content", [b"this is not an ONNX model\n" * 4, "truncated"])
def test_damaged_file_is_one_user_error(tmp_path, exported, content):
    if content == "truncated":
        content = exported[1][:len(exported[1]) // 2]
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        onnx_runtime.Runner(model_path=str(path))
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and "tftool-export --onnx" in message
    with pytest.raises(UserError, match="model bytes .*tftool-export --onnx"):
        onnx_runtime.Runner(model_content=content)
    with pytest.raises(UserError, match="missing.onnx does not exist"):
        onnx_runtime.Runner(model_path=str(tmp_path / "missing.onnx"))


def test_require_names_the_extra(monkeypatch):
    onnx_runtime.require()  # installed here
    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    with pytest.raises(UserError) as error:
        onnx_runtime.require()
    assert str(error.value) == ("ONNX export needs the onnx extra: pip install 'tftool[onnx]' "
                                "(make install installs it)")
