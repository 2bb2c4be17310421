"""Converts every stage's model to .tflite: `tftool-export` / `python -m tftool.export`.

Example: python -m tftool.export --workdir=workdir --export_dir=exported
Writes EXPORT_DIR/<name>_<variant>.tflite, a JSON model card beside each, and labels.txt
(one class name a line, in the order of the model's output index). Every file is written
to a temporary name and renamed into place.
"""
import datetime
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, bench, cli, convert, data as data_lib, workdir
from tftool.runner import Runner

from absl import flags

FLAGS = flags.FLAGS

# variant -> (stage whose model is converted, conversion mode)
VARIANTS = {
    "float32": ("float", "float32"),
    "float16": ("float", "float16"),
    "dynamic_range": ("float", "dynamic_range"),
    "int8": ("float", "int8"),
    "qat_int8": ("qat", "qat_int8"),
}
STAGE_COMMAND = {"float": "tftool-train", "qat": "tftool-quantize"}

flags.DEFINE_string("export_dir", "exported", "Directory of the deployable files.")
flags.DEFINE_string("name", None, "File name prefix (default: <dataset>_<model>).")
flags.DEFINE_list("variants", list(VARIANTS), f"Variants to export: {', '.join(VARIANTS)}.")
flags.DEFINE_integer("calibration_steps", 100,
                     "Train images in the int8 representative_dataset (calibration).")
flags.DEFINE_integer("seed", 0, "Seed of the calibration sample.")
flags.register_validator("calibration_steps", lambda v: v >= 1,
                         message="--calibration_steps must be ≥ 1")
flags.register_validator("variants", lambda v: bool(v) and all(x in VARIANTS for x in v),
                         message=f"--variants: choose from {', '.join(VARIANTS)}")


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
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv):
    del argv
    settings = cli.data_settings("export")
    for variant in FLAGS.variants:
        stage = VARIANTS[variant][0]
        if not workdir.has_model(FLAGS.workdir, stage):
            raise UserError(f"variant {variant} needs {workdir.model_path(FLAGS.workdir, stage)}"
                            f": run {STAGE_COMMAND[stage]} first, or leave {variant} out of "
                            f"--variants")
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    name = FLAGS.name or cli.default_name(FLAGS.workdir)
    images, labels = data_lib.test_arrays(dataset, image_size)
    representative = data_lib.representative_dataset(dataset, image_size,
                                                     FLAGS.calibration_steps, FLAGS.seed)
    models = {}
    os.makedirs(FLAGS.export_dir, exist_ok=True)
    workdir.write_text(os.path.join(FLAGS.export_dir, "labels.txt"),
                       "\n".join(dataset.class_names) + "\n")
    for variant in FLAGS.variants:
        stage, mode = VARIANTS[variant]
        if stage not in models:
            models[stage] = workdir.load_model(workdir.model_path(FLAGS.workdir, stage))
        content = convert.to_tflite(models[stage], mode, representative_dataset=representative)
        runner = Runner(model_content=content)
        accuracy = bench.accuracy_stats(runner(images), labels)["accuracy"]
        path = os.path.join(FLAGS.export_dir, f"{name}_{variant}.tflite")
        workdir.write_bytes(path, content)
        workdir.write_json(os.path.splitext(path)[0] + ".json",
                           model_card(name, variant, stage, runner, dataset, image_size,
                                      accuracy, len(labels)))
        print(f"{path}: {len(content) / 1024:.1f} KiB, test accuracy {accuracy:.4f}")


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
