"""Tiny image classifiers trained for a few seconds on digits, shared by test_metadata.py and
test_predict.py (trained once per session), and LiteRT run directly as the reference."""
import numpy as np

_CACHE = {}


def rgb_digits(digits):
    """(train uint8 [N, 8, 8, 3], train labels, test uint8 [M, 8, 8, 3], test labels)."""
    if "rgb_digits" not in _CACHE:
        def arrays(ds):
            images, labels = zip(*ds.as_numpy_iterator())
            return np.repeat(np.stack(images), 3, axis=-1), np.array(labels)
        _CACHE["rgb_digits"] = (*arrays(digits.train), *arrays(digits.test))
    return _CACHE["rgb_digits"]


def trained_rgb(digits):
    """keras Input(8, 8, 3) "image" -> conv -> pool -> conv -> GAP -> Dense(10, softmax)
    "probabilities", 15 epochs on digits as RGB (≈ 3 s; test accuracy ≈ 0.97)."""
    if "rgb" not in _CACHE:
        import tensorflow as tf
        import tf_keras as keras

        keras.utils.set_random_seed(0)
        x_train, y_train, _, _ = rgb_digits(digits)
        inputs = keras.Input(shape=(8, 8, 3), name="image")
        x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
        x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy")
        model.fit(x_train / 255.0, y_train, epochs=15, batch_size=64, verbose=0)
        _CACHE["rgb"] = model
    return _CACHE["rgb"]


def trained_gray_small_cnn(digits):
    """tftool's small_cnn (width 8) on grayscale digits, logits output, 6 epochs."""
    if "gray" not in _CACHE:
        import tensorflow as tf
        import tf_keras as keras
        from tftool import models

        keras.utils.set_random_seed(0)
        x_train, y_train, _, _ = rgb_digits(digits)
        model = models.build("small_cnn", (8, 8, 1), 10, width=8)
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x_train[..., :1] / 255.0, y_train, epochs=6, batch_size=64, verbose=0)
        _CACHE["gray"] = model
    return _CACHE["gray"]


def convert(model, mode, calibration=None):
    """float32, or full-integer int8 with a uint8 input and mode "uint8_<output dtype>"
    (uint8_uint8, uint8_float32), calibrated on `calibration` (uint8 images)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None].astype(np.float32) / 255.0]
                                                    for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = {"uint8_uint8": tf.uint8,
                                           "uint8_float32": tf.float32}[mode]
    return converter.convert()


def litert_scores(tflite_bytes, images_uint8):
    """LiteRT's own output for uint8 pixels [N, H, W, C]: a uint8 input gets the pixels, a
    float32 one pixel/255; uint8 outputs dequantized. float32 [N, K]."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scores = []
    for image in images_uint8:
        x = image[None] if inp["dtype"] == np.uint8 else image[None].astype(np.float32) / 255
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero_point = out["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        scores.append(y)
    return np.array(scores)
