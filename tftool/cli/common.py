"""What every absl entry point shares: common flags, the one-line error exit, stage bookkeeping.

Entry points (train.py, quantize.py, export.py, benchmark.py, ...) stay thin: they parse
flags, build the strategy, call a library function and write files through the helpers here.
"""
import contextlib
import os
import shutil
import sys
import tempfile

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, io as workdir

from absl import app, flags, logging

FLAGS = flags.FLAGS

# ---- flags shared by all stages --------------------------------------------------------------
flags.DEFINE_string("workdir", "workdir", "Directory of the stage folders (float/, qat/, ...).")
flags.DEFINE_string("dataset", None,
                    "digits, a TFDS catalog name (mnist, cifar10, ...) or folder:PATH. Default: "
                    "digits for train; the float model's data set for later stages.")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's own).")
flags.DEFINE_string("manual_dir", None, "TFDS manual download directory (catalog data sets).")
flags.DEFINE_integer("channels", None, "Force 1 (grayscale) or 3 (RGB) input channels.")
flags.DEFINE_integer("image_size", None, "Square input size in pixels (default: native).")
flags.DEFINE_boolean("download", True, "Allow TFDS to download a catalog data set.")
flags.DEFINE_boolean("skip_corrupt", False,
                     "folder: data sets: skip images that cannot be decoded (and say how many) "
                     "instead of stopping at the first one. Later stages inherit it.")
flags.register_validator("channels", lambda v: v in (None, 1, 3),
                         message="--channels must be 1 or 3")
flags.register_validator("image_size", lambda v: v is None or v >= 4,
                         message="--image_size must be ≥ 4 pixels")

DATA_FLAGS = ("dataset", "data_dir", "manual_dir", "channels", "image_size")


def define_training_flags(epochs, learning_rate, lr_schedule="cosine", augment=True,
                          per_replica_batch_size=64, warmup_epochs=0.0):
    """Defines the flags of a stage that trains, with that stage's defaults."""
    from tftool.train import fit as trainer, schedules, strategy

    flags.DEFINE_integer("epochs", epochs, "Training epochs (≥ 1).")
    flags.DEFINE_integer("per_replica_batch_size", per_replica_batch_size,
                         "Batch per replica; the global batch is this × replicas.")
    flags.DEFINE_float("learning_rate", learning_rate, "Peak learning rate (> 0).")
    flags.DEFINE_enum("lr_schedule", lr_schedule, schedules.SCHEDULES, "Learning-rate schedule.")
    flags.DEFINE_float("warmup_epochs", warmup_epochs, "Linear warm-up (cosine_warmup), epochs.")
    flags.DEFINE_enum("optimizer", "adam", trainer.OPTIMIZERS, "Optimizer.")
    flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay (0: none).")
    flags.DEFINE_boolean("augment", augment, "Random translation/rotation/zoom/contrast.")
    flags.DEFINE_boolean("hflip", None, "Random horizontal flips (default: only for data sets "
                         "whose classes survive a mirror, e.g. cifar10; never for digits).")
    flags.DEFINE_integer("seed", 0, "Random seed (weights, data order, augmentation).")
    flags.DEFINE_enum("strategy", "auto", strategy.STRATEGIES, "Distribution strategy.")
    flags.DEFINE_integer("num_gpus", None, "Use the first N GPUs (default: all).")
    flags.DEFINE_integer("cpu_replicas", 1, "Without GPUs: split the CPU into N logical devices "
                         "and train N replicas with MirroredStrategy.")
    flags.DEFINE_boolean("overwrite", False, "Train this stage again even if it is complete.")
    flags.DEFINE_boolean("deterministic", False,
                         "Deterministic ops and data order: two runs with the same --seed give "
                         "bit-identical weights (tested on CPU; slower).")
    flags.DEFINE_boolean("scale_lr", False,
                         "Linear scaling rule (Goyal et al. 2017): learning rate × global batch / "
                         "--reference_batch_size.")
    flags.DEFINE_integer("reference_batch_size", trainer.REFERENCE_BATCH_SIZE,
                         "--scale_lr: the global batch at which --learning_rate was tuned (the "
                         "defaults were tuned at 64 = 64 per replica × 1 replica).")
    flags.register_validator("reference_batch_size", lambda v: v >= 1,
                             message="--reference_batch_size must be ≥ 1")
    flags.register_validator("epochs", lambda v: v >= 1, message="--epochs must be ≥ 1")
    flags.register_validator("per_replica_batch_size", lambda v: v >= 1,
                             message="--per_replica_batch_size must be ≥ 1")
    flags.register_validator("learning_rate", lambda v: v > 0,
                             message="--learning_rate must be > 0")
    flags.register_validator("warmup_epochs", lambda v: v >= 0,
                             message="--warmup_epochs must be ≥ 0")
    flags.register_validator("weight_decay", lambda v: v >= 0,
                             message="--weight_decay must be ≥ 0")
    flags.register_validator("cpu_replicas", lambda v: v >= 1,
                             message="--cpu_replicas must be ≥ 1")
    flags.register_validator("num_gpus", lambda v: v is None or v >= 1,
                             message="--num_gpus must be ≥ 1")


def train_config(dataset):
    """A trainer.TrainConfig from the training flags; hflip defaults from the data set."""
    from tftool.train import fit as trainer

    hflip = dataset.hflip_safe if FLAGS.hflip is None else FLAGS.hflip
    return trainer.TrainConfig(
        epochs=FLAGS.epochs, per_replica_batch_size=FLAGS.per_replica_batch_size,
        learning_rate=FLAGS.learning_rate, lr_schedule=FLAGS.lr_schedule,
        warmup_epochs=FLAGS.warmup_epochs, optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay, augment=FLAGS.augment, hflip=hflip, seed=FLAGS.seed,
        deterministic=FLAGS.deterministic, scale_lr=FLAGS.scale_lr,
        reference_batch_size=FLAGS.reference_batch_size)


def build_strategy():
    """The strategy from --strategy/--num_gpus/--cpu_replicas (call before any TF op)."""
    from tftool.train import strategy

    built = strategy.build(FLAGS.strategy, FLAGS.num_gpus, FLAGS.cpu_replicas)
    logging.info("strategy %s", strategy.describe(built))
    return built


def is_chief(strategy):
    """Whether this process writes files (False only on non-chief multi-worker workers)."""
    from tftool.train import strategy as strategy_lib

    return strategy is None or strategy_lib.is_chief(strategy)


# ---- data settings ---------------------------------------------------------------------------
def data_settings(stage):
    """The data flags for `stage` as a dict.

    The float stage takes them from the flags (dataset default: digits). Later stages take them
    from WORKDIR/float/config.json, so `tftool-export --workdir=W` needs no repeated flags; a
    data flag given explicitly that disagrees with the float model's raises UserError.
    """
    given = {k: getattr(FLAGS, k) for k in DATA_FLAGS}
    if stage == "float":
        given["dataset"] = given["dataset"] or "digits"
        return {**given, "skip_corrupt": FLAGS.skip_corrupt}
    float_config = workdir.read_json(
        os.path.join(workdir.stage_dir(FLAGS.workdir, "float"), "config.json"))
    if float_config is None:
        raise UserError(f"no float model config in {FLAGS.workdir}/float: run tftool-train "
                        f"--workdir={FLAGS.workdir} first")
    settings = {k: float_config.get(k) for k in DATA_FLAGS}
    for key, value in given.items():
        if value is not None and FLAGS[key].present and value != settings[key]:
            raise UserError(f"--{key}={value} differs from the float model's --{key}="
                            f"{settings[key]} in {FLAGS.workdir}/float; use another --workdir")
    settings["skip_corrupt"] = FLAGS.skip_corrupt or bool(float_config.get("skip_corrupt"))
    return settings


def load_data(settings):
    from tftool import data

    return data.load(settings["dataset"], data_dir=settings["data_dir"],
                     manual_dir=settings["manual_dir"], channels=settings["channels"],
                     download=FLAGS.download, skip_corrupt=bool(settings.get("skip_corrupt")))


# ---- stage bookkeeping -----------------------------------------------------------------------
def stage_complete(stage, inputs=(), chief=True):
    """Whether WORKDIR/<stage> is complete and up to date, so the stage can be skipped.

    Complete: model.h5 and metrics.json exist, --overwrite is off, and no file in `inputs`
    (the models the stage was made from) is newer than its model. A stale or forced stage has
    its resume state cleared, so it starts at epoch 0 rather than mixing two runs; only the
    chief (`chief`) clears it, as only the chief writes in multi-worker training.
    """
    out = workdir.stage_dir(FLAGS.workdir, stage)
    metrics = workdir.read_json(os.path.join(out, "metrics.json"))
    model = workdir.model_path(FLAGS.workdir, stage)
    if metrics is not None and os.path.isfile(model):
        stale = [p for p in inputs if os.path.getmtime(p) > os.path.getmtime(model)]
        if not FLAGS.overwrite and not stale:
            print(f"{out}: complete, skipped (test accuracy "
                  f"{metrics.get('test_accuracy', 0):.4f}); pass --overwrite to run it again")
            return True
        logging.info("%s: %s; starting it again", out,
                     f"{stale[0]} is newer" if stale else "--overwrite")
        if chief:
            workdir.clear_training_state(out)
    elif FLAGS.overwrite and chief:
        workdir.clear_training_state(out)
    return False


@contextlib.contextmanager
def stage_lock(directory, chief=True, config=None, free=()):
    """Takes workdir.stage_lock on the chief (the only writer; nothing on other workers), then
    checks `config` against DIR/config.json (workdir.check_config, honouring --overwrite).

    The check runs under the lock, so a second run refused by the lock cannot first rewrite
    the config of the stage the first run is still training.
    """
    with (workdir.stage_lock(directory) if chief else contextlib.nullcontext()):
        if config is not None:
            workdir.check_config(directory, config, overwrite=FLAGS.overwrite, write=chief,
                                 free=free)
        yield


def flags_text(flag_values=FLAGS):
    """The resolved tftool flags in absl flagfile form (one --name=value a line), without the
    run-control flags of NOT_RECORDED."""
    lines = []
    for module, module_flags in sorted(flag_values.flags_by_module_dict().items()):
        if module.startswith("absl"):
            continue
        for flag in module_flags:
            if flag.name in NOT_RECORDED:
                continue
            text = flag.serialize()
            if text and text not in lines:
                lines.append(text)
    return "\n".join(sorted(lines)) + "\n"


def write_stage(stage, model, metrics, strategy=None):
    """Writes WORKDIR/<stage>/{model.h5, metrics.json, flags.txt} atomically, model first.

    The model is saved in float32 (precision.to_float32) even when it was trained under
    mixed_float16. In multi-worker training every worker calls this (saving reads
    sync-on-read variables, a collective); non-chief workers write into a temporary directory
    that is deleted afterwards, as in the TF multi-worker guide.
    """
    from tftool.train import precision

    model = precision.to_float32(model)
    chief = is_chief(strategy)
    out = workdir.stage_dir(FLAGS.workdir, stage)
    target = out if chief else tempfile.mkdtemp(prefix=f"tftool_{stage}_workertemp_")
    try:
        workdir.save_model(model, os.path.join(target, workdir.MODEL_FILE))
        workdir.write_text(os.path.join(target, "flags.txt"), flags_text())
        workdir.write_json(os.path.join(target, "metrics.json"), metrics)
    finally:
        if not chief:
            shutil.rmtree(target, ignore_errors=True)
    where = out if chief else f"{out} (non-chief worker: written by the chief)"
    print(f"{where}: test accuracy {metrics['test_accuracy']:.4f}")


# ---- running ---------------------------------------------------------------------------------
# Flags absl's parser handles itself; they are not in FLAGS but every entry point takes them.
ABSL_SPECIAL_FLAGS = ("flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml",
                      "only_check_args")
# Run-control flags that must not be replayed from flags.txt: `--flagfile=WORKDIR/x/flags.txt`
# repeats the run, it does not force a new one.
NOT_RECORDED = ("overwrite",)


def drop_foreign_flags(argv, prog):
    """Removes --name[=value] arguments that this entry point does not define.

    Only used when TFTOOL_SHARED_FLAGS=1 (the Makefile sets it), so that `make all FLAGS=...`
    can hand one set of flags to every stage; each stage says which flags it ignored, so a typo
    is still visible. Run directly, an unknown flag stays a parse error.
    """
    kept = [argv[0]]
    for arg in argv[1:]:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        known = (name is None or name in FLAGS or name in ABSL_SPECIAL_FLAGS
                 or (name.startswith("no") and name[2:] in FLAGS))
        if known:
            kept.append(arg)
        else:
            print(f"{prog}: note: ignoring {arg} (not a flag of {prog})", file=sys.stderr)
    return kept


def run(main):
    """absl `app.run(main)`, turning UserError into one line on stderr and exit status 2."""
    prog = os.path.basename(sys.argv[0]).replace(".py", "")
    argv = sys.argv
    if os.environ.get("TFTOOL_SHARED_FLAGS") == "1":
        argv = drop_foreign_flags(argv, prog)

    def wrapped(argv):
        if len(argv) > 1:
            print(f"{prog}: error: unexpected arguments {' '.join(argv[1:])}; flags are "
                  f"--name=value", file=sys.stderr)
            sys.exit(2)
        try:
            return main(argv)
        except UserError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(wrapped, argv=argv)


def default_name(workdir_path):
    """<dataset>_<model> from WORKDIR/float/config.json, safe as a file name prefix."""
    import re

    config = workdir.read_json(os.path.join(workdir.stage_dir(workdir_path, "float"),
                                            "config.json")) or {}
    dataset = config.get("dataset") or "model"
    if dataset.startswith("folder:"):
        dataset = os.path.basename(os.path.normpath(dataset[len("folder:"):]))
    name = f"{dataset}_{config.get('model', 'model')}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
