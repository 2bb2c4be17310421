"""Converts every stage's model to .tflite: `tftool-export` / `python -m tftool.export`.

Example: python -m tftool.export --workdir=workdir --export_dir=exported
Writes EXPORT_DIR/<name>_<variant>.tflite, a JSON model card beside each, and labels.txt
(one class name a line, in the order of the model's output index). Every file is written
to a temporary name and renamed into place.

Accuracy gate (--max_accuracy_drop, default 0.01): accuracies are top-1 fractions in [0, 1] on
the whole test split, so 0.01 is one percentage point. A variant is written only if
  float Keras accuracy − variant accuracy ≤ max_accuracy_drop
(the float Keras model is WORKDIR/float, measured in this run). A refused variant is not
written, so the file an earlier run exported under that name (and its model card) stays as it
was; the other variants are still written, then the command exits with status 2 naming the
refused ones, so `make export` fails. --max_accuracy_drop=1 turns the gate off.
"""
import datetime
import os
import sys

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool.cli import common as cli
from tftool.benchmark import rows as bench
from tftool import UserError, data as data_lib, io as workdir
from tftool.export import convert
from tftool.litert import Runner, to_pixels

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
                 "pqat": "tftool-quantize --from=pruned",
                 "teacher": "tftool-distill --teacher=small_cnn", "student": "tftool-distill",
                 "student_baseline": "tftool-distill --baseline"}
CALIBRATION_DATA = ("train", "blank")
# Different models, not conversions of the float one: the gate compares these variants with
# their own Keras stage (its metrics.json test accuracy), so a student a point below the
# float teacher still ships while a broken conversion of it does not.
OWN_REFERENCE_STAGES = ("teacher", "student", "student_baseline")

flags.DEFINE_string("export_dir", "exported", "Directory of the deployable files.")
flags.DEFINE_string("name", None, "File name prefix (default: <dataset>_<model>).")
flags.DEFINE_list("variants", None, f"Variants to export: {', '.join(VARIANTS)} (default: "
                  f"every variant whose stage has a model in WORKDIR).")
flags.DEFINE_integer("calibration_steps", 100,
                     "Train images in the int8 representative_dataset (calibration).")
flags.DEFINE_integer("seed", 0, "Seed of the calibration sample.")
flags.DEFINE_float("max_accuracy_drop", 0.01,
                   "Accuracy gate: refuse a variant whose top-1 test accuracy is more than this "
                   "below the float Keras model's (teacher/student variants: their own Keras "
                   "model's) (fractions: 0.01 = 1 percentage point; 1 = off).")
flags.DEFINE_enum("calibration_data", "train", CALIBRATION_DATA,
                  "int8 calibration images: train (--calibration_steps train images) or blank "
                  "(constant black images; a deliberately broken int8 for testing the accuracy "
                  "gate, never for a real export).")
flags.register_validator("max_accuracy_drop", lambda v: 0 <= v <= 1,
                         message="--max_accuracy_drop must be in [0, 1] (0.01 = 1 point)")
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
                   "scale": float(out_scale), "zero_point": int(out_zero),
                   "meaning": "probabilities" if runner.outputs_probabilities else "logits"},
        "preprocessing": {
            "range": [0.0, 1.0], "size": list(image_size), "channels": runner.input_shape[-1],
            "resize": "bilinear, antialiased", "layout": "NHWC",
            "formula": ("x = pixel / 255" if in_scale == 0 else
                        "q = pixel (raw uint8)" if inp["dtype"].__name__ == "uint8" else
                        "x = pixel / 255; q = round(x / scale) + zero_point, clipped to int8"),
        },
        "class_names": dataset.class_names, "labels_file": "labels.txt",
        "test_accuracy": accuracy, "test_examples": num_test,
        "tensorflow_version": tf.__version__, "tftool_version": tftool.__version__,
        "converter_versions": bench.versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def gate_refusal(variant, accuracy, float_accuracy, max_drop, path,
                 reference="the float Keras model"):
    """The accuracy gate: None if `variant` may be written, else the one-line reason.

    Args: accuracy, float_accuracy: top-1 fractions in [0, 1] on the same test split
      (float_accuracy: the reference model's, named by `reference`);
      max_drop: largest allowed float_accuracy − accuracy (fraction; 0.01 = 1 point);
      path: where the variant would go (the line says whether an old file is kept there).
    """
    drop = float_accuracy - accuracy
    if drop <= max_drop + 1e-9:  # 1e-9: float noise must not refuse a drop of exactly max_drop
        return None
    kept = (f"kept the existing {path} unchanged" if os.path.exists(path)
            else f"{path} not written")
    return (f"refused {variant}: test accuracy {accuracy:.4f} is {drop * 100:.2f} points below "
            f"{reference}'s {float_accuracy:.4f} (--max_accuracy_drop="
            f"{max_drop:g}); {kept}")


def blank_representative_dataset(input_shape, num_samples):
    """A representative_dataset of `num_samples` constant black float32 [1, H, W, C] images.

    Calibrating on it gives int8 ranges that fit no real image: a deliberately broken
    variant, for checking that the accuracy gate stops it (--calibration_data=blank).
    """
    import numpy as np

    def gen():
        for _ in range(num_samples):
            yield [np.zeros((1, *input_shape), np.float32)]
    return gen


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
    if not workdir.has_model(FLAGS.workdir, "float"):  # the accuracy gate compares with it
        raise UserError(f"no float model at {workdir.model_path(FLAGS.workdir, 'float')}: run "
                        f"tftool-train first")
    variants = resolve_variants(FLAGS.workdir, FLAGS.variants)
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    name = FLAGS.name or cli.default_name(FLAGS.workdir)
    images, labels = data_lib.test_arrays(dataset, image_size)
    if FLAGS.calibration_data == "blank":
        representative = blank_representative_dataset(image_size + (images.shape[-1],),
                                                      FLAGS.calibration_steps)
    else:
        representative = data_lib.representative_dataset(dataset, image_size,
                                                         FLAGS.calibration_steps, FLAGS.seed)
    models = {"float": workdir.load_model(workdir.model_path(FLAGS.workdir, "float"))}
    float_accuracy = bench.accuracy_stats(
        models["float"].predict(images, batch_size=256, verbose=0), labels)["accuracy"]
    refused = []
    os.makedirs(FLAGS.export_dir, exist_ok=True)
    workdir.write_text(os.path.join(FLAGS.export_dir, "labels.txt"),
                       "\n".join(dataset.class_names) + "\n")
    for variant in variants:
        stage, mode = VARIANTS[variant]
        if stage not in models:
            models[stage] = workdir.load_model(workdir.model_path(FLAGS.workdir, stage))
        content = convert.to_tflite(models[stage], mode, representative_dataset=representative)
        runner = Runner(model_content=content)
        accuracy = bench.accuracy_stats(runner(to_pixels(images)), labels)["accuracy"]
        path = os.path.join(FLAGS.export_dir, f"{name}_{variant}.tflite")
        reference, reference_accuracy = "the float Keras model", float_accuracy
        if stage in OWN_REFERENCE_STAGES:
            reference = f"its Keras {stage} model"
            reference_accuracy = workdir.read_json(os.path.join(
                workdir.stage_dir(FLAGS.workdir, stage), "metrics.json"))["test_accuracy"]
        refusal = gate_refusal(variant, accuracy, reference_accuracy, FLAGS.max_accuracy_drop,
                               path, reference)
        if refusal:
            print(f"tftool-export: {refusal}", file=sys.stderr, flush=True)
            refused.append(variant)
            continue
        card = model_card(name, variant, stage, runner, dataset, image_size, accuracy,
                          len(labels))
        card["accuracy_gate"] = {"reference": reference,
                                 "reference_accuracy": reference_accuracy,
                                 "float_accuracy": float_accuracy,
                                 "max_accuracy_drop": FLAGS.max_accuracy_drop}
        workdir.write_bytes(path, content)
        workdir.write_json(os.path.splitext(path)[0] + ".json", card)
        print(f"{path}: {len(content) / 1024:.1f} KiB, test accuracy {accuracy:.4f} "
              f"(float {float_accuracy:.4f})")
    if refused:
        raise UserError(f"the accuracy gate refused {', '.join(refused)} (more than "
                        f"{FLAGS.max_accuracy_drop * 100:g} point(s) below its reference model); "
                        f"the other variants were written. Fix the variant, or pass "
                        f"--variants without it or a larger --max_accuracy_drop")


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
