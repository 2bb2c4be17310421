import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import data, internals, models
from tftool.export import convert
from tftool.optimize import qat
from tftool.litert import Runner, to_pixels

INTEGER_IO = set(convert.INTEGER_MODES)


@pytest.fixture(scope="module")
def model():
    m = models.build("small_cnn", (8, 8, 1), 10, width=8)
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.RandomState(0).rand(64, 8, 8, 1).astype(np.float32)
    m.fit(x, np.arange(64) % 10, epochs=1, verbose=0)  # non-trivial BN statistics
    return m


@pytest.fixture(scope="module")
def qat_model(model):
    return qat.apply(model)


def representative():
    rng = np.random.RandomState(1)
    for _ in range(10):
        yield [rng.rand(1, 8, 8, 1).astype(np.float32)]


@pytest.fixture(scope="module")
def trained(digits):
    """small_cnn width 8 trained on digits (float: 5 epochs; QAT: 1 more epoch), the test split
    as uint8 pixels, and a cache of conversions keyed by (mode, rgb_input, output)."""
    keras.utils.set_random_seed(0)
    train = data.pipeline(digits.train, (8, 8), 32, training=True)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    float_model = models.build("small_cnn", (8, 8, 1), 10, width=8)
    float_model.compile(keras.optimizers.Adam(3e-3), loss)
    float_model.fit(train, epochs=5, verbose=0)
    qat_model = qat.apply(float_model)
    qat_model.compile(keras.optimizers.Adam(1e-3), loss)
    qat_model.fit(train, epochs=1, verbose=0)
    images, labels = data.test_arrays(digits, (8, 8))
    calibration = data.representative_dataset(digits, (8, 8), num_samples=30)
    cache = {}

    def convert_cached(mode, rgb_input=True, output="probabilities"):
        key = (mode, rgb_input, output)
        if key not in cache:
            source = qat_model if mode == "qat_int8" else float_model
            cache[key] = convert.to_tflite(source, mode, calibration, rgb_input=rgb_input,
                                           output=output)
        return cache[key]

    return {"float": float_model, "qat": qat_model, "pixels": to_pixels(images),
            "labels": labels, "convert": convert_cached,
            "keras_top1": {"float": float_model.predict(images, verbose=0).argmax(-1),
                           "qat": qat_model.predict(images, verbose=0).argmax(-1)}}


# Every mode as apps get it (RGB in, probabilities out); the other input and output choices
# on float32 and int8 (qat_int8 builds the same serving graph around its model; its own
# fake-quant concerns are tested below).
APP_CASES = ([(mode, True, "probabilities") for mode in convert.MODES]
             + [(mode, rgb, out) for mode in ("float32", "int8")
                for rgb, out in ((False, "probabilities"), (True, "logits"), (False, "logits"))])


@pytest.mark.parametrize("mode,rgb_input,output", APP_CASES)
def test_every_mode_gives_an_app_ready_model(trained, mode, rgb_input, output):
    runner = Runner(model_content=trained["convert"](mode, rgb_input, output), num_threads=1)
    assert runner.interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["image"], "outputs": [output]}}
    assert runner.input_shape == (8, 8, 3 if rgb_input else 1)
    assert runner.outputs_probabilities == (output == "probabilities")
    if mode in INTEGER_IO:
        # probabilities: integer up to the logits, then DEQUANTIZE and a float SOFTMAX
        # (convert.float_softmax_tail), so the scores sum to 1 exactly
        probabilities = output == "probabilities"
        assert runner.input_dtype == np.uint8
        assert runner.output_dtype == (np.float32 if probabilities else np.uint8)
        scale, zero_point = runner.input_details["quantization"]
        assert scale == pytest.approx(1 / 255, rel=1e-6) and zero_point == 0  # raw pixels
        ops = [op["op_name"] for op in internals.ops_details(runner.interpreter)
               if op["op_name"] != "DELEGATE"]  # XNNPACK's node, listed after the model's
        floats = [d["name"] for d in runner.interpreter.get_tensor_details()
                  if d["dtype"] == np.float32]
        if probabilities:
            assert ops[-2:] == ["DEQUANTIZE", "SOFTMAX"] and "DEQUANTIZE" not in ops[:-2]
            assert len(floats) == 2  # the dequantized logits and the probabilities
        else:
            # full integer: not one float32 tensor, the RGB -> gray conv included
            assert "DEQUANTIZE" not in ops and not floats
    else:
        assert runner.input_dtype == np.float32 and runner.output_dtype == np.float32
    scores = runner(trained["pixels"])  # 1-channel pixels: replicated for an RGB model
    assert scores.shape == (len(trained["labels"]), 10)
    if output == "probabilities":
        assert scores.min() >= 0 and scores.max() <= 1
        # float softmax: exact; int16x8 computes it in int16 (steps of 1/32768)
        np.testing.assert_allclose(scores.sum(-1), 1, atol=1e-3)
    keras_top1 = trained["keras_top1"]["qat" if mode == "qat_int8" else "float"]
    agreement = np.mean(scores.argmax(-1) == keras_top1)
    assert agreement >= (0.97 if mode in INTEGER_IO else 0.995)
    assert np.mean(scores.argmax(-1) == trained["labels"]) >= 0.9


@pytest.mark.parametrize("mode", convert.MODES)
def test_rgb_input_keeps_the_accuracy(trained, mode):
    """The RGB export fed the RGB version (R = G = B) of the gray test images is as accurate as
    the 1-channel export fed the gray images."""
    pixels, labels = trained["pixels"], trained["labels"]
    rgb = Runner(model_content=trained["convert"](mode, True))(np.repeat(pixels, 3, axis=-1))
    gray = Runner(model_content=trained["convert"](mode, False))(pixels)
    rgb_accuracy = np.mean(rgb.argmax(-1) == labels)
    assert rgb_accuracy >= np.mean(gray.argmax(-1) == labels) - 0.005
    if mode in INTEGER_IO:  # int8 gray weights sum to exactly 1: bit-identical outputs
        np.testing.assert_array_equal(rgb, gray)


def test_rgb_to_gray_is_tf_image_rgb_to_grayscale(model):
    """Colour pixels: the float export computes the model on tf.image.rgb_to_grayscale(x);
    int8 uses int8-exact weights within 0.003 of them."""
    rgb = np.random.RandomState(0).randint(0, 256, (16, 8, 8, 3)).astype(np.uint8)
    reference = model.predict(tf.image.rgb_to_grayscale(rgb / 255.0).numpy(), verbose=0)
    float_runner = Runner(model_content=convert.to_tflite(model, "float32", output="logits"))
    np.testing.assert_allclose(float_runner(rgb), reference, atol=1e-4)
    assert np.max(np.abs(np.subtract(convert.RGB_TO_GRAY_INT8, convert.RGB_TO_GRAY))) < 0.003
    assert sum(convert.RGB_TO_GRAY_INT8) == pytest.approx(1, abs=1e-12)


@pytest.mark.parametrize("mode", ["float32", "float16", "int8"])
def test_sparsity_leaves_the_added_gray_conv_out(model, mode):
    from tftool.benchmark import sparsity

    assert sparsity.EXPORT_ADDED_OP_PREFIX == convert.GRAY_OP_NAME
    content = convert.to_tflite(model, mode, representative)
    kernels = sparsity.kernel_sparsity(model_content=content)
    assert len(kernels) == 5 and kernels[0]["size"] == 3 * 3 * 1 * 8  # 4 convs + logits


@pytest.mark.parametrize("mode", ["int8", "qat_int8"])
def test_integer_input_is_raw_pixels_whatever_the_calibration(model, qat_model, mode):
    """Calibration images in [0, 0.6] would give the input scale 0.6/255; the input range is
    pinned to [0, 1], so the app's raw pixels still mean pixel/255."""
    def dim():
        rng = np.random.RandomState(2)
        for _ in range(10):
            yield [0.6 * rng.rand(1, 8, 8, 1).astype(np.float32)]

    source = qat_model if mode == "qat_int8" else model
    runner = Runner(model_content=convert.to_tflite(source, mode, dim))
    scale, zero_point = runner.input_details["quantization"]
    assert runner.input_dtype == np.uint8
    assert scale == pytest.approx(1 / 255, rel=1e-6) and zero_point == 0
    assert runner.output_dtype == np.float32  # probabilities from the float softmax tail
    uint8_out = Runner(model_content=convert.to_tflite(source, mode, dim,
                                                       inference_output_type="uint8"))
    out_scale, out_zero_point = uint8_out.output_details["quantization"]
    assert out_scale == pytest.approx(1 / 256) and out_zero_point == 0  # uint8 probabilities


@pytest.mark.parametrize("mode", ["int8"])
def test_rgb_model_gets_no_gray_conversion(mode):
    rgb_model = models.build("small_cnn", (8, 8, 3), 10, width=4)
    source = qat.apply(rgb_model) if mode == "qat_int8" else rgb_model

    def rgb_calibration():
        rng = np.random.RandomState(4)
        for _ in range(5):
            yield [rng.rand(1, 8, 8, 3).astype(np.float32)]

    for rgb_input in (True, False):
        runner = Runner(model_content=convert.to_tflite(source, mode, rgb_calibration,
                                                        rgb_input=rgb_input))
        assert runner.input_shape == (8, 8, 3)
        tensors = [d["name"] for d in runner.interpreter.get_tensor_details()]
        assert not any(convert.GRAY_OP_NAME in name for name in tensors)
        assert runner.input_dtype == np.uint8


@pytest.mark.parametrize("mode", ["int8", "qat_int8"])
def test_int8_and_float32_io_stay_possible(model, qat_model, mode):
    source = qat_model if mode == "qat_int8" else model
    runner = Runner(model_content=convert.to_tflite(
        source, mode, representative, inference_input_type="int8",
        inference_output_type="int8", output="logits"))
    assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
    scale, zero_point = runner.input_details["quantization"]
    assert scale == pytest.approx(1 / 255, rel=1e-6) and zero_point == -128
    runner = Runner(model_content=convert.to_tflite(
        source, mode, representative, inference_input_type="float32",
        inference_output_type="float32"))
    assert runner.input_dtype == np.float32 and runner.output_dtype == np.float32


def test_int16x8_io(model):
    runner = Runner(model_content=convert.to_tflite(
        model, "int16x8", representative, inference_input_type="int16",
        inference_output_type="int16"))
    assert runner.input_dtype == np.int16 and runner.output_dtype == np.int16
    x = np.random.RandomState(3).randint(0, 256, (4, 8, 8, 1)).astype(np.uint8)
    np.testing.assert_allclose(runner(x).sum(-1), 1, atol=0.01)


def test_float16_stores_float16_weights(model):
    runner = Runner(model_content=convert.to_tflite(model, "float16"))
    assert np.float16 in {d["dtype"] for d in runner.interpreter.get_tensor_details()}


def test_sizes_shrink_as_expected():
    # width 32: weights, not the flatbuffer's fixed overhead, dominate the file
    model = models.build("small_cnn", (8, 8, 1), 10, width=32)
    sizes = {m: len(convert.to_tflite(model, m, representative_dataset=representative))
             for m in ("float32", "float16", "int8")}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["int8"] < 0.35 * sizes["float32"]


def test_qat_int8_signature_names_the_image_not_the_fake_quant(qat_model):
    runner = Runner(model_content=convert.to_tflite(qat_model, "qat_int8"))
    assert runner.interpreter.get_signature_list()["serving_default"] == {
        "inputs": ["image"], "outputs": ["probabilities"]}
    assert "FakeQuant" not in runner.input_details["name"]
    assert runner.input_dtype == np.uint8 and runner.output_dtype == np.float32


def test_errors(model):
    with pytest.raises(ValueError, match="allowed: float32, float16, dynamic_range, int8"):
        convert.to_tflite(model, "int4")
    with pytest.raises(ValueError, match="representative_dataset"):
        convert.to_tflite(model, "int8")
    with pytest.raises(ValueError, match="allowed: probabilities, logits"):
        convert.to_tflite(model, "float32", output="softmax")
    with pytest.raises(ValueError, match="'uint16' for mode 'int8'; allowed: uint8, int8, float32"):
        convert.to_tflite(model, "int8", representative, inference_input_type="uint16")
    with pytest.raises(ValueError, match="'int16' for mode 'int8'; allowed: uint8, int8, float32"):
        convert.to_tflite(model, "int8", representative, inference_output_type="int16")
    with pytest.raises(ValueError, match="'uint8' for mode 'float16'; allowed: float32$"):
        convert.to_tflite(model, "float16", inference_input_type="uint8")


@pytest.mark.parametrize("op,fn", [
    ("FLOOR", lambda tf, x: tf.math.floor(x)),  # the converter refuses it
    ("SQUARED_DIFFERENCE", lambda tf, x: tf.math.squared_difference(x, 0.5)),  # the runtime
])
def test_int16x8_names_an_op_without_a_16x8_kernel(op, fn):
    import tensorflow as tf

    from tftool import UserError

    inputs = keras.Input((8, 8, 1))
    x = fn(tf, keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)), name="odd")
    with pytest.raises(UserError, match=f"^int16x8: odd has op {op}, which ") as info:
        convert.to_tflite(model, "int16x8", representative_dataset=representative)
    assert "\n" not in str(info.value)


def test_int8_per_tensor_stores_one_weight_scale_per_kernel(trained):
    """int8 quantizes conv kernels per output channel; int8_per_tensor with one scale, so a
    clustered kernel's k centroids stay k int8 codes (optimize/fold.py says why)."""
    def kernel_scales(mode):
        """[(output channels, weight scales)] of the conv kernels (OHWI int8 tensors)."""
        runner = Runner(model_content=trained["convert"](mode), num_threads=1)
        return [(int(d["shape"][0]), len(d["quantization_parameters"]["scales"]))
                for d in runner.interpreter.get_tensor_details()
                if d["dtype"] == np.int8 and d["name"].endswith("/Conv2D")
                and ";" not in d["name"]]
    per_channel, per_tensor = kernel_scales("int8"), kernel_scales("int8_per_tensor")
    assert len(per_channel) == 4 and all(c == n for c, n in per_channel), per_channel
    assert len(per_tensor) == 4 and all(n == 1 for _, n in per_tensor), per_tensor


@pytest.mark.parametrize("kind", ["functional", "qat", "graphless"])
def test_the_converter_gets_a_bare_module_and_the_same_bytes_as_with_the_model(
        model, qat_model, tmp_path, monkeypatch, kind):
    """convert.make_converter hands TFLiteConverter a tf.Module of the variables the serving
    function captures, not the tf_keras model (whose SavedModel save traces every layer: 4-5x
    the time on a deep model). The converter swallows a failed save and converts a frozen graph
    to other bytes instead, so the bytes must be those with the model as trackable object: a
    functional model, its QAT model, and an imported subclassed one (graphless: its variables
    live in a loaded SavedModel that model.variables does not list)."""
    from tftool import graphless

    if kind == "graphless":
        source = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                                   keras.layers.GlobalAveragePooling2D(),
                                   keras.layers.Dense(10)])
        subject = graphless.wrap(graphless.save(source, str(tmp_path / "sm"), (8, 8, 1)),
                                 (8, 8, 1))
        assert subject.variables == []
    else:
        subject = qat_model if kind == "qat" else model
    mode = "qat_int8" if kind == "qat" else "int8"
    fast = convert.to_tflite(subject, mode, representative)
    monkeypatch.setattr(convert, "make_converter", lambda concrete, m: (
        tf.lite.TFLiteConverter.from_concrete_functions([concrete], m)))
    assert convert.to_tflite(subject, mode, representative) == fast
