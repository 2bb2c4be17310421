"""Teacher-student distillation: `tftool-distill` / `python -m tftool.distill`.

Example: python -m tftool.distill --workdir=workdir --baseline
Trains a small student (--student_model, --student_width) to match a frozen teacher
(optimize/distill.py, Hinton et al. 2015) and writes WORKDIR/student/. The teacher is
  --teacher=float (default) or another stage name   WORKDIR/<stage>/model.h5
  --teacher=PATH                                     a stage folder with model.h5, or a .h5 file
  --teacher=MODEL (small_cnn, mobilenet_v2)          trained first into WORKDIR/teacher/
                                                     (--teacher_width, same training flags)
--student_qat distills straight into a QAT-wrapped student, so the deployed int8 model is the
one that was taught. --baseline also trains the same student from the same initial weights,
epochs and seed on the labels alone, into WORKDIR/student_baseline/, so the benchmark shows what
distillation bought.
"""
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool.cli import common as cli
from tftool import UserError, data as data_lib, models, io as workdir
from tftool.optimize import distill as distill_lib, qat
from tftool.train import fit as trainer

from absl import flags, logging

FLAGS = flags.FLAGS
_TEACHER_STAGES = [s for s in workdir.STAGES if not s.startswith("student")]
flags.DEFINE_string("teacher", "float", f"Teacher: a stage of WORKDIR ({', '.join(_TEACHER_STAGES)}"
                    f"), a stage folder or .h5 path, or a model name ({', '.join(models.MODELS)})"
                    f" to train first into WORKDIR/teacher.")
flags.DEFINE_integer("teacher_width", 64, "small_cnn teacher trained by --teacher=small_cnn: "
                     "channels of the first stage.")
flags.DEFINE_string("student_model", "small_cnn", f"Student: {', '.join(models.MODELS)}.")
flags.DEFINE_integer("student_width", 12, "small_cnn student: channels of the first stage "
                     "(default 12: 1/7 the parameters and about 0.35x the 1-thread int8 "
                     "latency of the width-32 float model).")
flags.DEFINE_float("student_alpha", 0.35, "mobilenet_v2 student: width multiplier.")
flags.DEFINE_float("temperature", 4.0, "Softmax temperature T of the soft targets (> 0).")
flags.DEFINE_float("alpha", 0.1, "Weight of the hard-label loss; 1 − alpha weights the "
                   "T²-scaled distillation loss. In [0, 1].")
flags.DEFINE_boolean("student_qat", False, "Distill into a QAT-wrapped student (export: "
                     "student_qat_int8).")
flags.DEFINE_boolean("baseline", False, "Also train the student from scratch (same epochs, seed, "
                     "initial weights) into WORKDIR/student_baseline.")
# 60 epochs, twice the float model's 30: matching a teacher's function takes longer than fitting
# labels (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and
# consistent"). On digits the gain is a few test images of 359, within run-to-run noise.
# Measured with --deterministic, T=4, alpha=0.1, the same width-32 teacher, seeds 0/1/2, test
# accuracy distilled vs from scratch:
#   width 12, 60 epochs:  0.9889/0.9916/0.9889 vs 0.9833/0.9916/0.9861  (2 wins, 1 tie)
#   width 12, 100 epochs: 0.9889/0.9861/0.9861 vs 0.9833/0.9944/0.9889  (1 win, 2 losses)
#   width 10, 60 epochs:  0.9805/0.9916/0.9833 vs 0.9861/0.9916/0.9861  (2 losses, 1 tie)
#   width 8, 100 epochs:  0.9805 vs 0.9861 on seed 0
# Smaller students lose more: the capacity gap (Cho & Hariharan 2019). Width 12's int8 p50 is
# 0.35x the teacher's at 1 thread but 0.55x at 2 threads, where per-op overhead dominates.
cli.define_training_flags(epochs=60, learning_rate=3e-3, lr_schedule="cosine_warmup",
                          warmup_epochs=1.0)
flags.register_validator("temperature", lambda v: v > 0,
                         message="--temperature must be > 0 (e.g. 4)")
flags.register_validator("alpha", lambda v: 0.0 <= v <= 1.0, message="--alpha must be in [0, 1]")
flags.register_validator("student_width", lambda v: v >= 1, message="--student_width must be ≥ 1")
flags.register_validator("teacher_width", lambda v: v >= 1, message="--teacher_width must be ≥ 1")


def teacher_path():
    """The teacher's model.h5 for --teacher, or None when --teacher names a model to train.

    Raises:
      UserError: the stage or path has no model, or --teacher is neither stage, path nor model.
    """
    teacher = FLAGS.teacher
    if teacher in workdir.STAGES:
        if teacher.startswith("student"):
            raise UserError(f"--teacher={teacher}: a student cannot teach itself; use float")
        path = workdir.model_path(FLAGS.workdir, teacher)
        if not os.path.isfile(path):
            raise UserError(f"--teacher={teacher}: no model at {path}; run the stage first "
                            f"(tftool-train --workdir={FLAGS.workdir}), or pass a model name "
                            f"({', '.join(models.MODELS)}) to train a teacher")
        return path
    if teacher in models.MODELS:
        return None
    if os.sep in teacher or teacher.endswith(".h5") or os.path.exists(teacher):
        path = teacher if teacher.endswith(".h5") else os.path.join(teacher, workdir.MODEL_FILE)
        if not os.path.isfile(path):
            raise UserError(f"--teacher={teacher}: no model at {path}; give a stage folder with "
                            f"{workdir.MODEL_FILE} (e.g. otherworkdir/float) or a .h5 file")
        return path
    raise UserError(f"--teacher={teacher}: not a stage ({', '.join(workdir.STAGES)}), a path "
                    f"or a model ({', '.join(models.MODELS)})")


def build_student(input_shape, num_classes):
    student = models.build(FLAGS.student_model, input_shape, num_classes,
                           width=FLAGS.student_width, alpha=FLAGS.student_alpha)
    # Unique inside the Distiller, whose weight files group variables by sub-model name.
    student._name = "student"
    return qat.apply(student) if FLAGS.student_qat else student


def train_teacher(strategy, dataset, image_size, input_shape):
    """Trains --teacher=MODEL into WORKDIR/teacher (skipped when complete); returns its path."""
    out = workdir.stage_dir(FLAGS.workdir, "teacher")
    chief = cli.is_chief(strategy)
    with cli.stage_lock(out, chief, {"model": FLAGS.teacher, "width": FLAGS.teacher_width}):
        if cli.stage_complete("teacher", chief=chief):
            return workdir.model_path(FLAGS.workdir, "teacher")

        def model_fn():
            model = models.build(FLAGS.teacher, input_shape, dataset.num_classes,
                                 width=FLAGS.teacher_width)
            model._name = "teacher"
            return model

        model, history = trainer.train(strategy, model_fn, dataset, image_size,
                                       cli.train_config(dataset), out)
        cli.write_stage("teacher", model, {
            **trainer.evaluate(model, dataset, image_size), "stage": "teacher",
            "model": FLAGS.teacher, "width": FLAGS.teacher_width, "epochs": FLAGS.epochs,
            "params": int(model.count_params()), "history": history}, strategy)
    return workdir.model_path(FLAGS.workdir, "teacher")


def student_config(source):
    return {"teacher": source, "student_model": FLAGS.student_model,
            "student_width": FLAGS.student_width, "student_qat": FLAGS.student_qat,
            "epochs": FLAGS.epochs, "seed": FLAGS.seed}


def main(argv):
    del argv
    source = teacher_path()  # validates --teacher before anything else happens
    strategy = cli.build_strategy()
    settings = cli.data_settings("student")
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    input_shape = image_size + (dataset.image_shape[-1],)
    if source is None:
        source = train_teacher(strategy, dataset, image_size, input_shape)
    config = cli.train_config(dataset)
    out = workdir.stage_dir(FLAGS.workdir, "student")
    chief = cli.is_chief(strategy)
    with cli.stage_lock(out, chief, {**student_config(FLAGS.teacher),
                                     "temperature": FLAGS.temperature, "alpha": FLAGS.alpha}):
        train_student(strategy, dataset, image_size, input_shape, config, source, out, chief)
    if FLAGS.baseline:
        train_baseline(strategy, dataset, image_size, input_shape, config)


def train_student(strategy, dataset, image_size, input_shape, config, source, out, chief):
    """Distills the teacher at `source` into a new student -> WORKDIR/student (skipped when
    complete and newer than the teacher; resumes a killed run)."""
    if not cli.stage_complete("student", inputs=[source], chief=chief):
        teacher_params = []

        def distiller_fn():  # inside strategy.scope()
            # The student first: it then draws the same initial weights as the baseline's.
            student = build_student(input_shape, dataset.num_classes)
            try:
                teacher = workdir.load_model(source)
                teacher_params.append(int(teacher.count_params()))
                return distill_lib.Distiller(student, teacher, FLAGS.temperature, FLAGS.alpha)
            except (OSError, ValueError) as e:  # not HDF5; another input size or class count
                raise UserError(f"--teacher={FLAGS.teacher}: cannot teach this student "
                                f"({str(e).splitlines()[0]}); give a model trained on this "
                                f"data set at this input size") from e

        distiller, history = trainer.train(
            strategy, distiller_fn, dataset, image_size, config, out,
            compile_fn=lambda model, optimizer: model.compile(optimizer=optimizer))
        student = distiller.student
        student_params = int(student.count_params())
        ratio = teacher_params[0] / student_params
        if ratio < 4:
            logging.warning("teacher has only %.1f× the student's parameters", ratio)
        cli.write_stage("student", student, {
            **trainer.evaluate(student, dataset, image_size), "stage": "student",
            "teacher": FLAGS.teacher, "teacher_path": source,
            "teacher_test_accuracy": trainer.evaluate(distiller.teacher, dataset,
                                                      image_size)["test_accuracy"],
            "params": student_params, "teacher_params": teacher_params[0],
            "teacher_to_student_params": ratio, "student_model": FLAGS.student_model,
            "student_width": FLAGS.student_width, "qat": FLAGS.student_qat,
            "temperature": FLAGS.temperature, "alpha": FLAGS.alpha, "epochs": FLAGS.epochs,
            "seed": FLAGS.seed, "num_replicas": strategy.num_replicas_in_sync,
            "history": history}, strategy)


def train_baseline(strategy, dataset, image_size, input_shape, config):
    """The same student, epochs and seed on the labels alone -> WORKDIR/student_baseline."""
    out = workdir.stage_dir(FLAGS.workdir, "student_baseline")
    chief = cli.is_chief(strategy)
    with cli.stage_lock(out, chief, student_config(None)):
        if cli.stage_complete("student_baseline", chief=chief):
            return
        model, history = trainer.train(
            strategy, lambda: build_student(input_shape, dataset.num_classes), dataset,
            image_size, config, out)
        cli.write_stage("student_baseline", model, {
            **trainer.evaluate(model, dataset, image_size), "stage": "student_baseline",
            "params": int(model.count_params()), "student_model": FLAGS.student_model,
            "student_width": FLAGS.student_width, "qat": FLAGS.student_qat,
            "epochs": FLAGS.epochs, "seed": FLAGS.seed,
            "num_replicas": strategy.num_replicas_in_sync, "history": history}, strategy)


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
