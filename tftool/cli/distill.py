"""Teacher-student distillation: `tftool-distill` / `python -m tftool distill`.

Trains a small student (--student_model, --student_width) to match a frozen teacher
(optimize/distill.py, Hinton et al. 2015) -> WORKDIR/student. --teacher is a stage of WORKDIR
(default float), a stage folder or .h5 path, or a model name trained first into
WORKDIR/teacher (--teacher_width). --student_qat distills into a QAT-wrapped student.
--baseline also trains the same student (same initial weights, epochs, seed) on the labels
alone -> WORKDIR/student_baseline, so the benchmark shows what distillation bought.
"""
from tftool import choose, fileio, jobs, stage_runner, stages
from tftool.cli import flags as cli_flags, run as cli_run, shared

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + cli_flags.TRAINING_FLAGS + (
    "teacher", "teacher_width", "student_model", "student_width", "student_alpha",
    "temperature", "hard_label_weight", "mixup_alpha", "student_qat", "baseline")
# The student's and baseline's training defaults (epochs None: the teacher's) have their one
# home in jobs.DEFAULTS["distill"], which says why each.
DEFAULTS = jobs.DEFAULTS["distill"]


def main(argv):
    del argv
    from tftool import models
    from tftool.optimize import distill

    source = distill.teacher_path(FLAGS.teacher, FLAGS.workdir)  # validated before any work
    if FLAGS.epochs is None:  # the teacher's epochs (recorded beside its model)
        FLAGS.epochs = distill.teacher_epochs(source) or jobs.NAMED_TEACHER_EPOCHS
    context, _ = shared.stage_context("student")
    config = shared.train_config(context.dataset)
    shape, classes = context.input_shape, context.dataset.num_classes
    if source is None:  # --teacher=MODEL: train it first (skipped when complete)
        stage_runner.run(stage_runner.Job(
            stage="teacher", config=config,
            settings={"model": FLAGS.teacher, "width": FLAGS.teacher_width},
            build=lambda: distill.named(FLAGS.teacher, shape, classes, "teacher",
                                        width=FLAGS.teacher_width),
            metrics=lambda m: {"model": FLAGS.teacher, "width": FLAGS.teacher_width}), context)
        source = stages.model_path(FLAGS.workdir, "teacher")
    teacher = distill.load_teacher(source, FLAGS.teacher, shape, classes)
    student = dict(student_model=FLAGS.student_model, student_width=FLAGS.student_width,
                   student_alpha=FLAGS.student_alpha, qat=FLAGS.student_qat)
    recorded = {"student_model": FLAGS.student_model, "student_width": FLAGS.student_width,
                "student_qat": FLAGS.student_qat, "epochs": FLAGS.epochs, "seed": FLAGS.seed}
    temperature = cli_flags.number_or_auto("temperature")
    weight = cli_flags.number_or_auto("hard_label_weight")
    settings = {"teacher": FLAGS.teacher, **recorded, "temperature": temperature,
                "hard_label_weight": weight, "mixup_alpha": FLAGS.mixup_alpha}

    def job(t, w, job_config, auto=None):
        return stage_runner.Job(
            stage="student", config=job_config, inputs=[source],
            settings={**settings, "temperature": t, "hard_label_weight": w},
            build=lambda: distill.Distiller(distill.student(shape, classes, **student),
                                            fileio.load_model(source), t, w, FLAGS.mixup_alpha),
            compile=lambda model, optimizer: model.compile(optimizer=optimizer),
            finish=lambda distiller: models.fold_logit_scale(distiller.student),
            metrics=lambda model: {**distill.student_metrics(
                model, teacher, context, teacher_name=FLAGS.teacher, teacher_path=source,
                temperature=t, hard_label_weight=w, mixup_alpha=FLAGS.mixup_alpha, **student),
                **({"auto": auto} if auto else {})})

    auto = None
    if "auto" in (temperature, weight):
        if choose.skip_if_complete("student", settings, context, inputs=[source]):
            auto = "done"
        else:
            temperature, weight, auto = choose.distillation_grid(temperature, weight, job,
                                                                config, context)
    if auto != "done":
        final = job(temperature, weight, config, auto)
        final.settings = settings if auto else final.settings  # record "auto" if asked
        stage_runner.run(final, context)
    if FLAGS.baseline:
        stage_runner.run(stage_runner.Job(
            stage="student_baseline", config=config, settings={"teacher": None, **recorded},
            build=lambda: distill.student(shape, classes, **student),
            finish=models.fold_logit_scale, metrics=lambda model: {**student}), context)


def cli_main():
    cli_run.entry_point("tftool-distill", NAMES, main, DEFAULTS)
