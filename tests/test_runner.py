import numpy as np
import pytest
import tensorflow as tf

from tftool import UserError, internals, models
from tftool.export import convert
from tftool.litert import Runner, to_pixels


@pytest.fixture(scope="module")
def model():
    return models.build("small_cnn", (8, 8, 1), 10, width=8)


def gray_pixels(n, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, 8, 8, 1)).astype(np.uint8)


def calibration():
    rng = np.random.RandomState(0)
    return ([rng.rand(1, 8, 8, 1).astype(np.float32)] for _ in range(20))


def test_float32_runner_agrees_with_keras(model):
    pixels = gray_pixels(37)
    runner = Runner(model_content=convert.to_tflite(model, "float32", rgb_input=False,
                                                    output="logits"), num_threads=1)
    assert runner.has_signature and not runner.outputs_probabilities
    reference = model.predict(pixels / 255.0, verbose=0)
    np.testing.assert_allclose(runner(pixels, batch_size=16), reference, atol=1e-4)
    assert runner(pixels[:1]).shape == (1, 10)


def test_rgb_model_gets_gray_pixels_replicated_and_gives_probabilities(model):
    pixels = gray_pixels(5)
    runner = Runner(model_content=convert.to_tflite(model, "float32"))
    assert runner.input_shape == (8, 8, 3) and runner.outputs_probabilities
    assert runner.input_dtype == np.float32 and runner.output_dtype == np.float32
    expected = tf.nn.softmax(model.predict(pixels / 255.0, verbose=0)).numpy()
    np.testing.assert_allclose(runner(pixels), expected, atol=1e-5)  # RGB of gray = gray
    np.testing.assert_allclose(runner(np.repeat(pixels, 3, -1)), expected, atol=1e-5)


def test_uint8_model_takes_pixels_as_they_are(model):
    runner = Runner(model_content=convert.to_tflite(model, "int8", calibration, output="logits"))
    assert runner.input_dtype == np.uint8 and runner.output_dtype == np.uint8
    pixels = gray_pixels(16)
    np.testing.assert_array_equal(runner.pixels_to_input(pixels), np.repeat(pixels, 3, -1))
    np.testing.assert_array_equal(runner.quantize_input(pixels / 255.0), np.repeat(pixels, 3, -1))
    out = runner(pixels)
    assert out.dtype == np.float32  # dequantized
    reference = model.predict(pixels / 255.0, verbose=0)
    assert np.abs(out - reference).max() < 0.1 * np.abs(reference).max() + 0.05


def test_int8_runner_quantizes_and_dequantizes(model):
    runner = Runner(model_content=convert.to_tflite(
        model, "int8", calibration, inference_input_type="int8", inference_output_type="int8",
        rgb_input=False, output="logits"))
    assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
    pixels = gray_pixels(16, seed=1)
    q = runner.pixels_to_input(pixels)
    # scale 1/255, zero point -128: an int8 input is the pixel shifted by 128
    np.testing.assert_array_equal(q, pixels.astype(np.int16) - 128)
    np.testing.assert_array_equal(runner.quantize_input(pixels / 255.0), q)  # float callers
    out = runner(pixels)
    assert out.dtype == np.float32
    reference = model.predict(pixels / 255.0, verbose=0)
    assert np.abs(out - reference).max() < 0.1 * np.abs(reference).max() + 0.05


def test_file_without_signature_runs_on_its_tensors(model):
    """Old files: a TF1-style conversion (from_session) has no serving_default signature."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session() as session:
        x = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 1], name="image")
        y = tf.identity(tf.reduce_mean(x, axis=[1, 2]) * 2.0, name="out")
        content = tf.compat.v1.lite.TFLiteConverter.from_session(session, [x], [y]).convert()
    runner = Runner(model_content=content)
    assert not runner.has_signature and not runner.outputs_probabilities
    pixels = gray_pixels(3)
    np.testing.assert_allclose(runner(pixels)[:, 0], 2 * pixels.mean((1, 2, 3)) / 255, atol=1e-5)


def test_set_input_and_invoke_after_a_signature_call(model):
    """The benchmark's path (set_input, invoke, output) still works after __call__."""
    runner = Runner(model_content=convert.to_tflite(model, "float32"), num_threads=1)
    pixels = gray_pixels(4)
    expected = runner(pixels)
    runner.set_input(pixels[:2])
    runner.invoke()
    np.testing.assert_allclose(runner.output(), expected[:2], atol=1e-6)
    assert runner.batch_size == 2


def test_pixels_are_checked(model):
    runner = Runner(model_content=convert.to_tflite(model, "float32", rgb_input=False))
    with pytest.raises(ValueError, match="uint8 0..255, got float32.*to_pixels"):
        runner(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"\[N, 8, 8, C\], got \[1, 4, 4, 1\]"):
        runner(np.zeros((1, 4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="takes 1 channel"):
        runner(np.zeros((1, 8, 8, 3), np.uint8))
    assert runner(np.zeros((1, 8, 8, 1), np.uint8)).shape == (1, 10)  # still usable


def test_to_pixels_rounds_and_clips():
    x = np.array([-0.1, 0.0, 0.4 / 255, 1.6 / 255, 0.5, 1.0, 1.2], np.float32)
    np.testing.assert_array_equal(to_pixels(x), [0, 0, 0, 2, 128, 255, 255])
    assert to_pixels(x).dtype == np.uint8


def test_without_xnnpack_gives_same_result(model):
    content = convert.to_tflite(model, "float32")
    pixels = gray_pixels(4)
    np.testing.assert_allclose(Runner(model_content=content, use_xnnpack=False)(pixels),
                               Runner(model_content=content)(pixels), atol=1e-5)


def test_xnnpack_flag_changes_the_runtime(model):
    """On: the default XNNPACK delegate takes over the graph (a DELEGATE node); off: none."""
    content = convert.to_tflite(model, "float32")

    def ops(use_xnnpack):
        runner = Runner(model_content=content, num_threads=1, use_xnnpack=use_xnnpack)
        return {op["op_name"] for op in internals.ops_details(runner.interpreter)}

    assert "DELEGATE" in ops(True) and "DELEGATE" not in ops(False)


def test_bad_file_is_a_user_error(tmp_path, model):
    path = tmp_path / "broken.tflite"
    path.write_bytes(convert.to_tflite(model, "float32")[:100])
    with pytest.raises(UserError, match="not a valid .tflite"):
        Runner(model_path=str(path))


MEDIAPIPE_CLIENT = """
import sys, numpy as np, mediapipe as mp
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision
pixels = np.load(sys.argv[2])
options = vision.ImageClassifierOptions(
    base_options=tasks.BaseOptions(model_asset_path=sys.argv[1]), max_results=-1)
classifier = vision.ImageClassifier.create_from_options(options)
scores = np.zeros((len(pixels), int(sys.argv[3])), np.float32)
for i, image in enumerate(pixels):
    result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB,
                                          data=np.ascontiguousarray(image)))
    for category in result.classifications[0].categories:
        scores[i, category.index] = category.score
classifier.close()
np.save(sys.argv[4], scores)
"""


def mediapipe_python():
    """The app-side MediaPipe environment (design: it cannot share the training venv):
    $TFTOOL_MEDIAPIPE_PYTHON or <repo>/.venv-mediapipe/bin/python."""
    import os

    from conftest import REPO

    path = os.environ.get("TFTOOL_MEDIAPIPE_PYTHON",
                          os.path.join(REPO, ".venv-mediapipe", "bin", "python"))
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(mediapipe_python() is None, reason="no MediaPipe environment")
def test_mediapipe_image_classifier_agrees_with_the_runner(model, tmp_path):
    """The unmodified uint8 export in MediaPipe Tasks ImageClassifier (RGB frames, no metadata
    needed for uint8 input) gives the scores our Runner gives."""
    import subprocess

    path = tmp_path / "m.tflite"
    path.write_bytes(convert.to_tflite(model, "int8", calibration))
    rgb = np.random.RandomState(5).randint(0, 256, (8, 8, 8, 3)).astype(np.uint8)
    np.save(tmp_path / "pixels.npy", rgb)
    subprocess.run([mediapipe_python(), "-c", MEDIAPIPE_CLIENT, str(path),
                    str(tmp_path / "pixels.npy"), "10", str(tmp_path / "scores.npy")],
                   check=True, capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"),
                               Runner(model_path=str(path))(rgb), atol=1e-6)
