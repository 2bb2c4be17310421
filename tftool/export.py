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
    # Compression stages (issue 3). Post-training int8 of a float-trained model, or the int8
    # conversion of a QAT-wrapped one; a student is one or the other (--student_qat).
    "pruned_int8": ("pruned", "int8"),
    "pqat_int8": ("pqat", "qat_int8"),
    "teacher_int8": ("teacher", "int8"),
    "student_int8": ("student", "int8"),
    "student_qat_int8": ("student", "qat_int8"),
    "student_baseline_int8": ("student_baseline", "int8"),
    "student_baseline_qat_int8": ("student_baseline", "qat_int8"),
}
STAGE_COMMAND = {"float": "tftool-train", "qat": "tftool-quantize", "pruned": "tftool-prune",
                 "pqat": "tftool-quantize --from=pruned", "teacher": "tftool-distill",
                 "student": "tftool-distill", "student_baseline": "tftool-distill --baseline"}
# Without sparse encodings (Optimize.EXPERIMENTAL_SPARSITY): measured on digits at 80% sparsity
# it shrinks the raw pqat_int8 file 75 -> 43 KiB but grows its gzip 26.0 -> 28.4 KiB, leaves
# XNNPACK latency unchanged (conv kernels are densified at load), and hides the zeros from the
# benchmark's sparsity measurement. Zeros in a dense int8 buffer compress just as well.
SPARSE_ENCODING = False

flags.DEFINE_string("export_dir", "exported", "Directory of the deployable files.")
flags.DEFINE_string("name", None, "File name prefix (default: <dataset>_<model>).")
flags.DEFINE_list("variants", None, f"Variants to export: {', '.join(VARIANTS)} (default: "
                  f"every variant whose stage has a model in WORKDIR).")
flags.DEFINE_integer("calibration_steps", 100,
                     "Train images in the int8 representative_dataset (calibration).")
flags.DEFINE_integer("seed", 0, "Seed of the calibration sample.")
flags.register_validator("calibration_steps", lambda v: v >= 1,
                         message="--calibration_steps must be ≥ 1")
flags.register_validator("variants",
                         lambda v: v is None or (bool(v) and all(x in VARIANTS for x in v)),
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


def stage_is_qat(workdir_path, stage):
    """Whether WORKDIR/<stage>'s model is QAT-wrapped (its metrics.json says so: "qat")."""
    metrics = workdir.read_json(os.path.join(workdir.stage_dir(workdir_path, stage),
                                             "metrics.json")) or {}
    return bool(metrics.get("qat", stage in ("qat", "pqat")))


def variant_fits(workdir_path, variant):
    """Whether `variant` can be made from what is in WORKDIR: its stage has a model, and the
    model is QAT-wrapped exactly when the variant converts a QAT model (mode qat_int8)."""
    stage, mode = VARIANTS[variant]
    return (workdir.has_model(workdir_path, stage)
            and stage_is_qat(workdir_path, stage) == (mode == "qat_int8"))


def resolve_variants(workdir_path, requested):
    """The variants to export: `requested`, or (None) every variant that fits WORKDIR.

    Raises:
      UserError: a requested variant's stage has no model, or the model is (not) QAT-wrapped.
    """
    if requested is None:
        return [v for v in VARIANTS if variant_fits(workdir_path, v)]
    for variant in requested:
        stage, mode = VARIANTS[variant]
        if not workdir.has_model(workdir_path, stage):
            raise UserError(f"variant {variant} needs {workdir.model_path(workdir_path, stage)}"
                            f": run {STAGE_COMMAND[stage]} first, or leave {variant} out of "
                            f"--variants")
        if not variant_fits(workdir_path, variant):
            other = [v for v in VARIANTS if VARIANTS[v][0] == stage and v != variant]
            raise UserError(f"variant {variant} does not fit {workdir_path}/{stage} (its model "
                            f"is {'' if stage_is_qat(workdir_path, stage) else 'not '}"
                            f"QAT-wrapped); export {' or '.join(other)} instead")
    return list(requested)


def main(argv):
    del argv
    settings = cli.data_settings("export")
    variants = resolve_variants(FLAGS.workdir, FLAGS.variants)
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
    for variant in variants:
        stage, mode = VARIANTS[variant]
        if stage not in models:
            models[stage] = workdir.load_model(workdir.model_path(FLAGS.workdir, stage))
        content = convert.to_tflite(models[stage], mode, representative_dataset=representative,
                                    sparsity=SPARSE_ENCODING)
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
