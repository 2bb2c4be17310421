import numpy as np
import pytest

from tftool import UserError, models
from tftool.export import convert
from tftool.litert import Runner


@pytest.fixture(scope="module")
def model():
    return models.build("small_cnn", (8, 8, 1), 10, width=8)


def test_float32_runner_agrees_with_keras(model):
    x = np.random.RandomState(0).rand(37, 8, 8, 1).astype(np.float32)
    runner = Runner(model_content=convert.to_tflite(model, "float32"), num_threads=1)
    np.testing.assert_allclose(runner(x, batch_size=16), model.predict(x, verbose=0), atol=1e-4)
    assert runner(x[:1]).shape == (1, 10)


def test_int8_runner_quantizes_and_dequantizes(model):
    rng = np.random.RandomState(0)
    calib = lambda: ([rng.rand(1, 8, 8, 1).astype(np.float32)] for _ in range(20))  # noqa: E731
    runner = Runner(model_content=convert.to_tflite(model, "int8", calib))
    x = np.random.RandomState(1).rand(16, 8, 8, 1).astype(np.float32)
    q = runner.quantize_input(x)
    assert q.dtype == np.int8 and q.min() >= -128 and q.max() <= 127
    out = runner(x)
    assert out.dtype == np.float32
    reference = model.predict(x, verbose=0)
    assert np.abs(out - reference).max() < 0.1 * np.abs(reference).max() + 0.05


def test_without_xnnpack_gives_same_result(model):
    content = convert.to_tflite(model, "float32")
    x = np.random.RandomState(0).rand(4, 8, 8, 1).astype(np.float32)
    np.testing.assert_allclose(Runner(model_content=content, use_xnnpack=False)(x),
                               Runner(model_content=content)(x), atol=1e-5)


def test_xnnpack_flag_changes_the_runtime(model):
    """On: the default XNNPACK delegate takes over the graph (a DELEGATE node); off: none."""
    content = convert.to_tflite(model, "float32")

    def ops(use_xnnpack):
        runner = Runner(model_content=content, num_threads=1, use_xnnpack=use_xnnpack)
        return {op["op_name"] for op in runner.interpreter._get_ops_details()}

    assert "DELEGATE" in ops(True) and "DELEGATE" not in ops(False)


def test_bad_file_is_a_user_error(tmp_path, model):
    path = tmp_path / "broken.tflite"
    path.write_bytes(convert.to_tflite(model, "float32")[:100])
    with pytest.raises(UserError, match="not a valid .tflite"):
        Runner(model_path=str(path))
