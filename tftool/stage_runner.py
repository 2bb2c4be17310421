"""The one stage runner: every stage that trains goes through `run(job, context)`.

What it does, in order, for WORKDIR/<stage>:
  1. lock the folder (a second run of the same stage stops at once) and check the settings
     the stage was first made with (config.json): a run with other settings is refused
     unless --overwrite, so a folder never mixes two runs;
  2. skip when complete (model.h5 + metrics.json, no input model newer, no --overwrite);
  3. run the stage's pre-flight check; only then record config.json and, when the input is
     newer or --overwrite asks for a new run, clear the resume state (a refused run writes
     and removes nothing); build its model inside `strategy.scope()`, fit it (train/fit.py)
     with the standard callbacks (train/callbacks.py: resume after a kill, checkpoints, NaN
     guard, ...) plus the stage's own, and `finish` it (strip wrappers, take the student, ...) and
     rebuild it with float32 layers if it trained under a mixed policy (precision.py);
     then re-estimate its BatchNormalization statistics on training images
     (train/batchnorm.py), so they describe the final weights whatever the schedule;
  4. evaluate it on the whole test split, streamed (evaluate.py); stop when the test accuracy
     is near chance (chance.py; --allow_chance_accuracy writes it, marked); write model.h5,
     flags.txt and metrics.json atomically (model first: a metrics.json means a model).
A stage supplies only what differs, as a `Job`: how to build the model, extra callbacks,
extra metrics, what to record in config.json. Layout of a stage folder (DESIGN.md):
  model.h5  config.json  metrics.json  flags.txt  logs/  ckpt/  backup/  .lock
and, instead of a model, skipped.json when make skipped the stage because tfmot cannot take
its input (cli/shared.py skip_stage); writing the stage's model removes it (write_stage).

Over 400 lines because the stage-folder bookkeeping (lock, config.json guard, completeness,
data settings) and `run` are one protocol, reached as stage_runner.<name> from the stages, the
entry points and the import alike.
"""
import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Callable, Mapping, Optional, Sequence

from tftool import UserError, fileio, stages

from absl import logging

# Data flags the float stage records and every later stage inherits from WORKDIR/float.
DATA_SETTINGS = ("dataset", "data_dir", "manual_dir", "channels", "image_size",
                 "validation_fraction", "test_fraction")


# ---- stage folder bookkeeping ----------------------------------------------------------------
@contextlib.contextmanager
def stage_lock(directory):
    """Holds an exclusive lock on DIR/.lock while a stage trains in DIR.

    A second run of the same stage (e.g. after `kill -9` hit `make` but not the training
    process it started) stops at once instead of writing the same backup/ concurrently. The
    kernel drops the lock when its holder dies, SIGKILL included, so a killed run never leaves
    a stale lock behind.
    Raises:
      UserError: another live process holds the lock (its pid is named).
    """
    import fcntl

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, ".lock")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise UserError(f"{directory} is being trained by another process (pid {holder}); "
                            f"wait for it to finish or stop it, then run again") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _shown(value):
    return "(default)" if value is None else value


# config.json keys that a flag of another name sets: "stages" is small_cnn's builder argument,
# recorded under that name since before the flag became --num_stages.
FLAG_OF_SETTING = {"stages": "num_stages"}


def check_config(directory, config, overwrite=False, write=True, free=()):
    """Guards a stage folder against mixing two different runs.

    Writes `config` (dict of flag name -> value) to DIR/config.json if there is none; if there
    is one that differs, raises UserError naming the first differing flag, unless `overwrite`.
    Args:
      write: False only checks (non-chief multi-worker workers do not write).
      free: keys that are recorded but may change between runs (e.g. skip_corrupt, which a
        user adds after a first run stopped at a corrupt image).
    Raises:
      UserError: a differing setting; config.json damaged (not a JSON object).
    """
    path = os.path.join(directory, "config.json")
    old = fileio.read_json_object(path, fix="delete it, or pass --overwrite to start this "
                                            "stage again")
    if old is not None and not overwrite:
        for key, value in config.items():
            if key in old and key not in free and old[key] != value:
                flag = FLAG_OF_SETTING.get(key, key)
                raise UserError(
                    f"{directory} was made with --{flag}={_shown(old[key])}, not "
                    f"{_shown(value)}: use another --workdir, or pass --overwrite to start "
                    f"this stage again")
    if write:
        fileio.write_json(path, config)


def clear_training_state(directory):
    """Removes resume state (backup/, ckpt/) so a forced re-run starts from epoch 0."""
    for sub in ("backup", "ckpt"):
        shutil.rmtree(os.path.join(directory, sub), ignore_errors=True)


def mark_skipped(workdir, stage, record):
    """Writes WORKDIR/<stage>/skipped.json (stages.SKIPPED_FILE) atomically: the stage was
    skipped (tfmot cannot take its input model) and why. `record` holds at least "reason"."""
    fileio.write_json(stages.skipped_path(workdir, stage), {"stage": stage, **record})


def clear_skipped(directory):
    """Removes DIR/skipped.json: a run of the stage went ahead, so the record is stale."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(directory, stages.SKIPPED_FILE))


def model_is_qat(workdir, stage):
    """Whether WORKDIR/<stage>'s model is QAT-wrapped: the registry's answer, or for stages
    where a flag decides (qat=None), what the run recorded in metrics.json."""
    row = stages.get(stage)
    if row.qat is not None:
        return row.qat
    return bool((stages.read_metrics(workdir, stage) or {}).get("qat"))


def load_stage_model(workdir, stage):
    """WORKDIR/<stage>'s Keras model, QAT wrappers included.

    cqat and pcqat models are rebuilt from their input stage's model and given the saved
    weights (optimize/qat.py `load`), because tfmot 0.8.1 cannot load them from HDF5.
    Raises: UserError: missing or damaged model file.
    """
    path = stages.model_path(workdir, stage)
    if stage not in stages.REBUILT_QAT:
        return fileio.load_model(path)
    from tftool.optimize import qat

    source = fileio.load_model(stages.model_path(workdir, stages.get(stage).input))
    if not os.path.isfile(path):
        raise UserError(stages.missing_model_message(workdir, stage))
    try:
        return qat.load(path, source, stages.REBUILT_QAT[stage])
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable {stage} model ({str(e).splitlines()[0]}); "
                        f"run `{stages.get(stage).command} --overwrite` again") from e


def is_complete(workdir, stage, inputs=(), overwrite=False):
    """(complete, restart) for WORKDIR/<stage>.

    complete: model.h5 and metrics.json exist, `overwrite` is off, and no file in `inputs`
    (the models the stage was made from) is newer than its model: the stage can be skipped.
    restart: the stage is not complete and its resume state (backup/, ckpt/) belongs to a run
    that must not be continued (an input is newer, or `overwrite`); the caller clears it once
    the run is sure to go ahead, so a refused run removes nothing.
    """
    out = stages.stage_dir(workdir, stage)
    metrics = stages.read_metrics(workdir, stage)
    model = stages.model_path(workdir, stage)
    if metrics is not None and os.path.isfile(model):
        stale = [p for p in inputs if os.path.getmtime(p) > os.path.getmtime(model)]
        if not overwrite and not stale:
            from tftool import evaluate

            split = "test" if "test_accuracy" in metrics else "validation"
            print(f"{out}: complete, skipped ({split} accuracy "
                  f"{evaluate.described(metrics, split)}); pass --overwrite to run it again")
            return True, False
        logging.info("%s: %s; starting it again", out,
                     f"{stale[0]} is newer" if stale else "--overwrite")
        return False, True
    return False, overwrite


def data_settings(workdir, stage, given, explicit=()):
    """The data settings (DATA_SETTINGS + skip_corrupt) a stage runs with, as a dict.

    The float stage takes them from `given` (dataset default: digits). Every later stage takes
    them from WORKDIR/float/config.json, so `tftool-export --workdir=W` needs no repeated data
    flags.
    Args:
      given: {setting: value} from the command line (None = not given).
      explicit: the settings the user typed; one that disagrees with the float model's raises.
    Raises:
      UserError: no float model config (names the command to run), or a disagreeing setting.
    """
    if stage == "float":
        settings = {k: given.get(k) for k in DATA_SETTINGS}
        settings["dataset"] = settings["dataset"] or "digits"
        return {**settings, "skip_corrupt": bool(given.get("skip_corrupt"))}
    float_config = fileio.read_json_object(
        os.path.join(stages.stage_dir(workdir, "float"), "config.json"),
        fix="run `tftool-train --overwrite` again")
    if float_config is None:
        raise UserError(f"no float model config in {os.path.join(workdir, 'float')}: run "
                        f"`tftool-train --workdir={workdir}` first")
    settings = {k: float_config.get(k) for k in DATA_SETTINGS}
    if "validation_fraction" not in float_config:  # a workdir from before validation splits
        raise UserError(f"{os.path.join(workdir, 'float')} was trained by an older tftool, on "
                        f"images that are now the validation split; run `tftool-train "
                        f"--workdir={workdir} --overwrite` again")
    for key in DATA_SETTINGS:
        value = given.get(key)
        if key in explicit and value is not None and value != settings[key]:
            raise UserError(f"--{key}={value} differs from the float model's --{key}="
                            f"{settings[key]} in {os.path.join(workdir, 'float')}; use another "
                            f"--workdir")
    settings["skip_corrupt"] = bool(given.get("skip_corrupt") or float_config.get("skip_corrupt"))
    return settings


def trained_image_size(workdir):
    """[height, width] of the float model's input, read from WORKDIR/float/model.h5's config
    (no weights loaded), or None when there is no model or it has no fixed size.

    For workdirs whose config.json recorded image_size null: then the size was the first
    image's, uncapped, and today's rule (the most common size, capped at 224) may differ.
    """
    import json

    import h5py

    path = stages.model_path(workdir, "float")
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
        shape = config["config"]["layers"][0]["config"]["batch_input_shape"]
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return None  # unreadable here: the stage that loads the model names the problem
    h, w = shape[1], shape[2]
    return None if h is None or w is None else [int(h), int(w)]


# ---- running a stage -------------------------------------------------------------------------
@dataclasses.dataclass
class Context:
    """What every stage of one run shares.

    workdir: WORKDIR; strategy: a tf.distribute.Strategy; dataset: data.Dataset;
    image_size: (height, width) in pixels; overwrite: --overwrite; flags_text: the resolved
    flags in flagfile form (written to flags.txt).
    """
    workdir: str
    strategy: object
    dataset: object
    image_size: tuple
    overwrite: bool = False
    flags_text: str = ""
    # --allow_chance_accuracy: write a model whose test accuracy is near chance (chance.py),
    # marked in metrics.json, instead of stopping.
    allow_chance_accuracy: bool = False
    # The splits a stage scores its model on; the first is what the chance guard reads. A
    # search trial scores validation only: the test split is read once, at the search's end.
    splits: tuple = ("test", "validation")
    # Whether a model near chance written under allow_chance_accuracy is warned about: not for
    # the candidates of a choice or a search, where a weak candidate is an ordinary result.
    warn_chance: bool = True

    @property
    def chief(self):
        from tftool.train import strategy as strategy_lib

        return strategy_lib.is_chief(self.strategy)

    @property
    def input_shape(self):
        """(height, width, channels) of the model input."""
        return tuple(self.image_size) + (self.dataset.image_shape[-1],)


def _identity(model):
    return model


def _no_metrics(model):
    del model
    return {}


@dataclasses.dataclass
class Job:
    """What one stage supplies to `run`; everything else is shared.

    stage: registry name (stages.py).
    build: () -> tf_keras model, called inside strategy.scope(); float32 [N, H, W, C] in
      [0, 1] -> [N, K] logits (or a Distiller; see `finish`).
    config: train.fit.TrainConfig.
    settings: what config.json records; a later run with other values is refused.
    inputs: model files the stage starts from (one newer than the stage's model: start over).
    preflight: () -> None, run after the skip check and before training (tfmot checks).
    callbacks: (stage_dir) -> list of extra Keras callbacks (e.g. pruning's step counter).
    compile: (model, optimizer) -> None (default: sparse cross-entropy on logits + accuracy).
    finish: model -> the model to save, called inside strategy.scope() (strip wrappers, ...).
    metrics: saved model -> dict of stage-specific figures for metrics.json.
    free: settings that may change between runs without --overwrite.
    """
    stage: str
    build: Callable
    config: object
    settings: Mapping = dataclasses.field(default_factory=dict)
    inputs: Sequence[str] = ()
    preflight: Optional[Callable] = None
    callbacks: Optional[Callable] = None
    compile: Optional[Callable] = None
    finish: Callable = _identity
    metrics: Callable = _no_metrics
    free: Sequence[str] = ()


def run(job, context):
    """Runs `job` in WORKDIR/<job.stage> (see the module docstring).

    Returns:
      the metrics dict written, or None when the stage was complete and skipped.
    Raises:
      UserError: the folder is locked by another run, was made with other settings, the
        pre-flight check fails, training fails in a way the user can fix (train/fit.py), or a
        file cannot be written.
    """
    from tftool import evaluate
    from tftool.train import fit, precision, strategy as strategy_lib

    out = stages.stage_dir(context.workdir, job.stage)
    chief = context.chief
    with (stage_lock(out) if chief else contextlib.nullcontext()):
        # Checked under the lock: a run refused by the lock cannot first rewrite the config
        # of the stage another run is still training. Recorded only once the pre-flight
        # passed, so a run refused for its input writes nothing.
        settings = dict(job.settings)
        check_config(out, settings, overwrite=context.overwrite, write=False, free=job.free)
        complete, restart = is_complete(context.workdir, job.stage, job.inputs,
                                        context.overwrite)
        if complete:
            return None
        if job.preflight:
            job.preflight()
        check_config(out, settings, overwrite=context.overwrite, write=chief, free=job.free)
        if restart and chief:  # start at epoch 0 rather than mix two runs
            clear_training_state(out)
        strategy = context.strategy
        model, history = fit.train(
            strategy, job.build, context.dataset, context.image_size, job.config, out,
            extra_callbacks=job.callbacks(out) if job.callbacks else (),
            compile_fn=job.compile)
        with strategy.scope():
            # float32 layers from here (a no-op unless trained under a mixed policy), so the
            # BN statistics and the test metrics below are those of the model.h5 written.
            model = precision.to_float32(job.finish(model))
            # BN moving statistics that describe the final weights, whatever the momentum
            # and the number of steps (train/batchnorm.py).
            fit.reestimate_batchnorm(model, context.dataset, context.image_size, job.config,
                                     strategy.num_replicas_in_sync)
        global_batch = job.config.per_replica_batch_size * strategy.num_replicas_in_sync
        metrics = {
            **evaluate.keras_metrics(model, context.dataset, context.image_size,
                                     splits=context.splits),
            "validation_split": context.dataset.validation_split,
            "test_split": context.dataset.test_split,
            "stage": job.stage, "epochs": job.config.epochs, "seed": job.config.seed,
            "augment": job.config.augment,  # clustered stages, students: clean by default
            # the policy and flips: a later stage takes the float model's (cli/shared.py)
            "augmentation": job.config.augmentation, "hflip": job.config.hflip,
            "epochs_this_run": len(history.get("loss", [])),
            "num_replicas": strategy.num_replicas_in_sync, "global_batch_size": global_batch,
            "steps_per_epoch": fit.steps_per_epoch_of(context.dataset.num_train, job.config,
                                                      strategy.num_replicas_in_sync),
            "params": int(model.count_params()),
            **job.metrics(model),
            # Reading BN moving statistics is a collective under multi-worker: every worker
            # computes it (and prints it below: equal digests, workers in sync).
            "weights_sha256": fit.weights_digest(model),
            "history": history,
        }
        line = (f"{strategy_lib.describe(strategy)}: trained {metrics['epochs_this_run']} "
                f"epoch(s) this run, weights sha256 {metrics['weights_sha256']}")
        if strategy.num_replicas_in_sync > 1 or not chief:  # workers compare their digests
            print(line, flush=True)
        else:
            logging.info("%s", line)
        guard_chance(out, model, metrics, context, (history.get("accuracy") or [None])[-1])
        write_stage(out, model, metrics, context.flags_text, chief)
    return metrics


NEAR_CHANCE_MODEL = "near_chance_model.h5"


def guard_chance(out, model, metrics, context, train_accuracy):
    """Stops a stage whose test accuracy is near chance (chance.near_chance), before its
    model.h5 is written; the model goes to DIR/near_chance_model.h5 for inspection instead.

    With context.allow_chance_accuracy the stage goes on and metrics["near_chance"] records
    the verdict (export refuses such a float model unless given the same flag).
    Raises:
      UserError: near chance without --allow_chance_accuracy (one line: both accuracies,
        likely causes, where the model was put, the flag).
    """
    import dataclasses as dc

    from tftool import chance

    dataset = context.dataset
    split = context.splits[0]
    verdict = chance.near_chance(metrics[f"{split}_accuracy"], dataset.num_classes,
                                 metrics[f"{split}_examples"], train_accuracy)
    if verdict is None:
        return
    if context.allow_chance_accuracy:
        metrics["near_chance"] = dc.asdict(verdict)
        if context.warn_chance:
            logging.warning("--allow_chance_accuracy: writing it anyway: %s",
                            verdict.message(out))
        return
    path = os.path.join(out, NEAR_CHANCE_MODEL)
    if context.chief:
        fileio.save_model(model, path)
    raise UserError(f"{verdict.message(out)}. Not written as {stages.MODEL_FILE}; saved to "
                    f"{path} for inspection. Pass --allow_chance_accuracy to write it anyway")


def write_stage(out, model, metrics, flags_text, chief=True):
    """Writes DIR/{model.h5, flags.txt, metrics.json} atomically, model first.

    `model` computes in float32: run() rebuilt it with precision.to_float32 if it trained
    under a mixed policy. In multi-worker training every worker calls this (saving reads
    sync-on-read variables, a collective); non-chief workers write into a temporary folder
    that is deleted afterwards, as in the TF multi-worker guide.
    """
    target = out if chief else tempfile.mkdtemp(prefix="tftool_workertemp_")
    try:
        fileio.save_model(model, os.path.join(target, stages.MODEL_FILE))
        fileio.write_text(os.path.join(target, "flags.txt"), flags_text)
        fileio.write_json(os.path.join(target, "metrics.json"), metrics)
        clear_skipped(target)  # every writer of a stage comes here: run, choose.adopt, import
    finally:
        if not chief:
            shutil.rmtree(target, ignore_errors=True)
    from tftool import evaluate

    where = out if chief else f"{out} (non-chief worker: written by the chief)"
    scored = [s for s in ("test", "validation") if f"{s}_accuracy" in metrics]
    print(f"{where}: " + ", ".join(f"{s} accuracy {evaluate.described(metrics, s)}"
                                   for s in scored), flush=True)
