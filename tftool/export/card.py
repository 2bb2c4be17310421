"""The JSON model card written beside each .tflite: what an app needs to feed it and read
its output, where it came from, and (after the benchmark) how it measured."""
import datetime

import tftool
from tftool.benchmark import rows


def model_card(name, variant, stage, runner, dataset, image_size, accuracy, num_test):
    """The JSON model card of one .tflite: what an app needs to feed it and read its output."""
    import tensorflow as tf

    inp, out = runner.input_details, runner.output_details
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    return {
        "name": name, "variant": variant, "file": f"{name}_{variant}.tflite",
        "source_stage": stage, "dataset": dataset.name,
        "input": {"shape": [1, *runner.input_shape], "dtype": inp["dtype"].__name__,
                  "scale": float(in_scale), "zero_point": int(in_zero)},
        "output": {"shape": [1, len(dataset.class_names)], "dtype": out["dtype"].__name__,
                   "scale": float(out_scale), "zero_point": int(out_zero), "meaning": "logits"},
        "preprocessing": {
            "range": [0.0, 1.0], "size": list(image_size), "channels": runner.input_shape[-1],
            "resize": "bilinear, antialiased", "layout": "NHWC",
            "formula": ("x = pixel / 255" if in_scale == 0 else
                        "x = pixel / 255; q = round(x / scale) + zero_point, clipped to int8"),
        },
        "class_names": dataset.class_names, "labels_file": "labels.txt",
        "test_accuracy": accuracy, "test_examples": num_test,
        "tensorflow_version": tf.__version__, "tftool_version": tftool.__version__,
        "converter_versions": rows.versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
