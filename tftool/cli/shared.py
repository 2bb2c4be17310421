"""What the mains share once their flags are parsed: the flags turned into library arguments
(data settings and data set, image size, strategy, training config and preset, a training
stage's stage_runner.Context, the export name) and make's rule for a stage tfmot cannot take
(skip it with one line, record it in WORKDIR/<stage>/skipped.json).
"""
import os
import re

from tftool import UserError, stage_runner, stages
from tftool.cli.flags import flags_text

from absl import flags, logging

# Read when a function runs: run.using_flags points it at a fresh FlagValues for an
# in-process call (tftool.api, the tests).
FLAGS = flags.FLAGS


def data_settings(stage):
    """stage_runner.data_settings from the data flags (see there)."""
    given = {k: FLAGS[k].value for k in stage_runner.DATA_SETTINGS}
    given["skip_corrupt"] = FLAGS.skip_corrupt
    explicit = {k for k in stage_runner.DATA_SETTINGS if FLAGS[k].present}
    return stage_runner.data_settings(FLAGS.workdir, stage, given, explicit)


def load_data(settings):
    """The data.Dataset of `settings` (data_settings)."""
    from tftool import data

    fraction = settings.get("validation_fraction") or data.DEFAULT_VALIDATION_FRACTION
    return data.load(settings["dataset"], data_dir=settings["data_dir"],
                     manual_dir=settings["manual_dir"], channels=settings["channels"],
                     download=FLAGS.download, skip_corrupt=bool(settings.get("skip_corrupt")),
                     validation_fraction=fraction,
                     test_fraction=settings.get("test_fraction") or data.DEFAULT_TEST_FRACTION)


def image_size(dataset, settings, stage=None):
    """(height, width) the stage runs at: the recorded or given size; for a workdir whose
    float/config.json recorded null (made before sizes were recorded, when the size was the
    first image's, uncapped) the float model's own input size, unless the float stage itself
    is retrained (`stage` "float" with --overwrite); else data.resolve_image_size's choice."""
    from tftool import data, stage_runner

    size = settings["image_size"]
    retrained = stage == "float" and "overwrite" in FLAGS and FLAGS.overwrite
    if size is None and not retrained and _recorded_null_size():
        size = stage_runner.trained_image_size(FLAGS.workdir)
    return data.resolve_image_size(dataset, size)


def _recorded_null_size():
    """Whether WORKDIR/float/config.json records image_size null (an older tftool's)."""
    from tftool import fileio, stages

    path = os.path.join(stages.stage_dir(FLAGS.workdir, "float"), "config.json")
    try:
        old = fileio.read_json_object(path) or {}
    except UserError:  # damaged: check_config names it
        old = {}
    return "image_size" in old and old["image_size"] is None


def recorded_image_size(settings, size):
    """What tftool-train records as image_size in config.json: the resolved `size` (height,
    width) as data.size_setting gives it, so later stages and readers see the size trained at.
    A workdir whose float/config.json recorded none (made before sizes were recorded) keeps
    None unless --image_size or --overwrite is given, so re-running it resumes or skips the
    stage instead of refusing it."""
    from tftool import data

    if settings.get("image_size") is None and not FLAGS.overwrite and _recorded_null_size():
        return None
    return data.size_setting(size)


def build_strategy():
    """The strategy from --strategy/--num_gpus/--cpu_replicas (call before any TF op)."""
    from tftool.train import strategy

    built = strategy.build(FLAGS.strategy, FLAGS.num_gpus, FLAGS.cpu_replicas)
    logging.info("strategy %s", strategy.describe(built))
    return built


def inherited_training(workdir):
    """The settings a later stage takes from the float model (presets.INHERITED: what its
    training images looked like), as the stage runner recorded them in WORKDIR/float/
    metrics.json; {} where the float model predates them or is missing."""
    from tftool import stages
    from tftool.train import presets

    metrics = stages.read_metrics(workdir, "float") or {}
    return {k: metrics[k] for k in presets.INHERITED if k in metrics}


def train_config(dataset):
    """A train.fit.TrainConfig from the training flags; hflip defaults from the data set.

    A stage after the float one (no --preset flag) takes the float model's augmentation
    policy and flips (inherited_training) unless its own flag is given, so QAT, pruning and
    distillation fine-tune on images like the ones the float model was trained on."""
    from tftool.train import fit

    inherited = {} if "preset" in FLAGS else inherited_training(FLAGS.workdir)

    def value(name):
        if name in inherited and not FLAGS[name].present:
            return inherited[name]
        return FLAGS[name].value

    hflip = value("hflip")
    hflip = dataset.hflip_safe if hflip is None else hflip
    return fit.TrainConfig(
        epochs=FLAGS.epochs, per_replica_batch_size=FLAGS.per_replica_batch_size,
        learning_rate=FLAGS.learning_rate, lr_schedule=FLAGS.lr_schedule,
        warmup_epochs=FLAGS.warmup_epochs, warmup_explicit=FLAGS["warmup_epochs"].present,
        optimizer=FLAGS.optimizer, momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay, label_smoothing=FLAGS.label_smoothing,
        use_ema=FLAGS.use_ema, ema_momentum=FLAGS.ema_momentum,
        augment=FLAGS.augment, augmentation=value("augmentation"), hflip=hflip,
        seed=FLAGS.seed, deterministic=FLAGS.deterministic, scale_lr=FLAGS.scale_lr,
        reference_batch_size=FLAGS.reference_batch_size,
        freeze_backbone_epochs=(FLAGS.freeze_backbone_epochs
                                if "freeze_backbone_epochs" in FLAGS else 0))


def timing_settings():
    """timing.time_calls' keyword arguments from the flags: --timing's preset (benchmark/
    timing.py TIMING), each of --min_runs, --min_seconds, --warmup_runs and --warmup_seconds
    replacing its field when given."""
    from tftool.benchmark import timing
    from tftool.cli.flags import TIMING_FLAGS

    return timing.resolve(FLAGS.timing, {name: FLAGS[name].value for name in TIMING_FLAGS
                                         if FLAGS[name].present})


def apply_preset(dataset, size, prog="tftool-train"):
    """Chooses the training preset for `dataset` at `size` (presets.choose on --preset) and
    sets every preset field the user did not give as a flag to the preset's value, so the
    rest of the run (and flags.txt) sees one resolved set of settings. Prints one line: the
    preset, why, and its main settings. Returns (Preset, reason).
    Raises: UserError: an unknown --preset."""
    from tftool.train import presets

    preset, reason = presets.choose(FLAGS.preset, FLAGS.dataset or "digits",
                                    dataset.image_shape[-1], size, dataset.hflip_safe)
    given = {name: FLAGS[name].value for name in presets.FIELDS
             if name in FLAGS and FLAGS[name].present}
    for name, value in presets.resolve(preset, given).items():
        if name in FLAGS and name not in given:
            setattr(FLAGS, name, value)
    overridden = f"; flags given: {', '.join(sorted(given))}" if given else ""
    flips = "flips" if (dataset.hflip_safe if FLAGS.hflip is None else FLAGS.hflip) \
        else "no flips"
    print(f"{prog}: preset {preset.name} ({reason}): {FLAGS.model}, {FLAGS.epochs} epochs, "
          f"{FLAGS.optimizer} {FLAGS.learning_rate:g}, batch {FLAGS.per_replica_batch_size}, "
          f"{FLAGS.augmentation if FLAGS.augment else 'no'} augmentation, {flips}, label "
          f"smoothing {FLAGS.label_smoothing:g}{overridden}", flush=True)
    return preset, reason


def check_training_flags():
    """Refuses training flags that contradict each other, before any data is read or folder
    made: an explicit --warmup_epochs (with --lr_schedule=cosine_warmup) of at least --epochs,
    and --freeze_backbone_epochs not below --epochs. A default warm-up is scaled to the run
    instead (train/fit.py), so `--epochs=1` works with every default. Settings still unset
    (None: tftool-train before its preset is applied) are not checked.
    Raises: UserError naming the flags and the fix."""
    if FLAGS.epochs is None:
        return
    # An unset schedule is a preset's, and every preset warms up (presets.py, tested).
    if (FLAGS.lr_schedule in (None, "cosine_warmup") and FLAGS["warmup_epochs"].present
            and FLAGS.warmup_epochs >= FLAGS.epochs):
        raise UserError(f"--warmup_epochs={FLAGS.warmup_epochs:g} leaves no epoch after warm-up "
                        f"with --epochs={FLAGS.epochs}; pass a smaller --warmup_epochs (e.g. 0)")
    freeze = FLAGS.freeze_backbone_epochs if "freeze_backbone_epochs" in FLAGS else 0
    if freeze and freeze >= FLAGS.epochs:
        raise UserError(f"--freeze_backbone_epochs={freeze} must be in [0, --epochs="
                        f"{FLAGS.epochs}): at least one epoch fine-tunes the whole model")


def stage_context(stage, strategy=None, resolve=None):
    """(stage_runner.Context, data settings) for a stage that trains, from the flags.

    Checks the training flags first (check_training_flags), then builds the strategy (before
    TensorFlow's first op) unless one is given. resolve: called as resolve(dataset,
    (height, width)) once the data are loaded (tftool-train's preset), before the training
    flags are checked again.
    """
    if "epochs" in FLAGS:
        check_training_flags()
    strategy = strategy or build_strategy()
    settings = data_settings(stage)
    dataset = load_data(settings)
    if resolve is not None:
        resolve(dataset, image_size(dataset, settings, stage))
        check_training_flags()
    context = stage_runner.Context(workdir=FLAGS.workdir, strategy=strategy, dataset=dataset,
                                   image_size=image_size(dataset, settings, stage),
                                   overwrite=FLAGS.overwrite, flags_text=flags_text(),
                                   allow_chance_accuracy=bool(
                                       "allow_chance_accuracy" in FLAGS
                                       and FLAGS.allow_chance_accuracy))
    return context, settings


def under_make():
    """Whether this entry point runs as a step of the Makefile's pipeline (the Makefile sets
    TFTOOL_SHARED_FLAGS=1 for every stage it runs)."""
    return os.environ.get("TFTOOL_SHARED_FLAGS") == "1"


def still_works():
    """What a model tfmot cannot take still gets, as the skip lines say it."""
    return (f"still works: every post-training variant "
            f"({', '.join(stages.get('float').variants)}), selective int8, the accuracy gate, "
            f"the benchmark, micro and distillation")


def skip_stage(prog, stage, reason, fix=None, cause=None, **record):
    """Prints the one skip line `<prog>: skipped: <reason>; still works: ...; <fix>` and
    records it in WORKDIR/<stage>/skipped.json (stage_runner.mark_skipped), which export and
    the benchmark's report read and a later run of the stage that goes ahead removes.
    cause: the short reason export and the report name (stages.skipped_summary), the same
    for every stage skipped after the first (default: `reason`)."""
    print(f"{prog}: skipped: {reason}; {still_works()}" + (f"; {fix}" if fix else ""),
          flush=True)
    stage_runner.mark_skipped(FLAGS.workdir, stage, {
        "command": prog, "reason": reason, "cause": cause or reason, "fix": fix, **record})


def run_or_skip(prog, run, stage):
    """Calls run() for WORKDIR/<stage>; returns False when it skipped the stage, else True.

    When tfmot cannot take the model (check.Unsupported: a subclassed or nested model, a
    layer its registries lack), it depends on who asked:
      - under make (TFTOOL_SHARED_FLAGS=1: `make all`, `make compress-all`, a stage target),
        the stage is skipped with one line that names the first blocking layer and what
        still works, WORKDIR/<stage>/skipped.json records it, and the exit status is 0: the
        user asked the pipeline for everything it can make, and the post-training variants,
        the gate, the benchmark and distillation do not need tfmot, so one stage tfmot cannot
        apply must not stop them (export then has no variant of that stage, and says so);
      - typed by hand, it stays the usual one-line error, exit status 2, and nothing is
        written: the user asked for this one stage, and an exit 0 without its model would let
        a script go on to `tftool-export --variants=qat_int8` and fail further away from the
        cause (the same rule as every other entry point: a stage that cannot do what it was
        asked says why and fails).
    """
    from tftool.optimize import check

    try:
        run()
    except check.Unsupported as e:
        if not under_make() or not e.blocking:
            raise
        skip_stage(prog, stage, e.summary(), e.fix, cause=e.short(), purpose=e.purpose,
                   layers=[f"{f['layer']} ({f['class']})" for f in e.blocking])
        return False
    return True


def input_or_skip(prog, stage, source, needed_by):
    """True when WORKDIR/<source>, the input of WORKDIR/<stage>, has a model.

    When it has none because make skipped it (stages.read_skipped: tfmot cannot take the
    model), under make this stage is skipped too (skip_stage: one line naming the skipped
    input, exit status 0) and False is returned. Otherwise, and always by hand, raises
    UserError (stages.missing_model_message: the command that makes the input, or why it was
    skipped), as run_or_skip says why."""
    workdir = FLAGS.workdir
    if stages.has_model(workdir, source):
        return True
    skipped = stages.read_skipped(workdir, source)
    if skipped is None or not under_make():
        raise UserError(stages.missing_model_message(workdir, source, needed_by))
    cause = skipped.get("cause") or skipped["reason"]
    skip_stage(prog, stage, f"its input {stages.stage_dir(workdir, source)} was skipped "
                            f"({cause})", skipped.get("fix"), cause=cause, input_skipped=source)
    return False


def default_name(workdir):
    """<dataset>_<model> from WORKDIR/float/config.json, safe as a file name prefix."""
    from tftool import fileio

    config = fileio.read_json_object(os.path.join(workdir, "float", "config.json")) or {}
    dataset = config.get("dataset") or "model"
    if dataset.startswith("folder:"):
        dataset = os.path.basename(os.path.normpath(dataset[len("folder:"):]))
    model = config.get("model") or "model"
    model = model.rsplit(":", 1)[-1]  # a builder of the user's, file.py:function: its function
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}_{model}")
