"""The most accurate model that fits a budget: `tftool-search` / `python -m tftool.search`.

Examples:
  tftool-search --workdir=workdir --max_latency_ms=0.004 --trials=30
  tftool-search --workdir=workdir --max_flash_kb=64 --max_arena_kb=16 --trials=20
Runs an Optuna multi-objective study (validation accuracy up, LiteRT p50 latency down; budgets
as constraints) over model builders, widths, input sizes and export variants. Each trial is a
real tftool run in WORKDIR/search/trial_<n>/ (the stage runner, export, the benchmark's
timing); a candidate over a hardware budget when untrained is rejected before it trains.
Writes WORKDIR/search/search.md, pareto.png, best.flags and summary.json; the chosen model's
test accuracy is measured once, at the end. A killed search resumes where it stopped;
processes sharing --storage share the study.
"""
import contextlib
import os
import time

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, io
from tftool.cli import common

from absl import flags

FLAGS = flags.FLAGS
NAMES = common.DATA_FLAGS + (
    "max_latency_ms", "max_size_kb", "max_flash_kb", "max_arena_kb", "min_accuracy", "trials",
    "timeout", "search_epochs", "storage", "study_name", "sampler", "search_objectives",
    "search_models", "search_widths", "search_alphas", "search_image_sizes", "search_variants",
    "search_sparsities", "threads", "min_runs", "min_seconds", "warmup_runs", "warmup_seconds",
    "seed")
# 0.3-s timing rows, as make's benchmark: a trial's latency is one row.
DEFAULTS = {"min_seconds": 0.3, "warmup_seconds": 0.15, "threads": ["1"]}


def quiet_optuna():
    """Optuna's INFO lines ("A new study created ...", one per trial) and its experimental
    warning on metric names stay off the terminal unless --verbosity is given; search.md and
    one line per trial say the same."""
    import warnings

    import optuna

    verbose = "verbosity" in FLAGS and FLAGS["verbosity"].present
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def settings_of_data():
    """The float model's data settings when WORKDIR/float has them, else the data flags."""
    try:
        return common.data_settings("search")
    except UserError as e:
        if "no float model config" not in str(e):
            raise
        return common.data_settings("float")


def main(argv):
    del argv
    from tftool import data
    from tftool.search import hardware, space, study, trial as trial_lib
    from tftool.train import strategy as strategy_lib

    budgets = hardware.Budgets(latency_ms=FLAGS.max_latency_ms, size_kb=FLAGS.max_size_kb,
                               flash_kb=FLAGS.max_flash_kb, arena_kb=FLAGS.max_arena_kb,
                               min_accuracy=FLAGS.min_accuracy)
    data_settings = settings_of_data()
    dataset = common.load_data(data_settings)
    native = min(data.resolve_image_size(dataset, data_settings.get("image_size")))
    variants = FLAGS.search_variants
    if budgets.micro:
        variants = [v for v in (variants or space.DEFAULT_VARIANTS) if v != "float16"]
    try:
        search_space = space.default_space(
            native, FLAGS.search_models, [int(v) for v in FLAGS.search_image_sizes or []],
            variants, [int(v) for v in FLAGS.search_widths or []],
            [float(v) for v in FLAGS.search_alphas or []],
            [float(v) for v in FLAGS.search_sparsities or []])
    except ValueError as e:
        raise UserError(f"search space: {e}") from e
    search_dir = os.path.join(FLAGS.workdir, "search")
    objectives = list(FLAGS.search_objectives)
    quiet_optuna()
    store = study.storage(FLAGS.storage, search_dir)
    the_study = study.open_study(store, FLAGS.study_name, objectives,
                                 study.sampler(FLAGS.sampler, FLAGS.seed))
    failed = study.fail_stale(the_study, search_dir)
    if failed:
        print(f"marked failed, whose process died: trial(s) {', '.join(map(str, failed))} "
              f"(each asked again once, resuming its stages)", flush=True)
    settings = trial_lib.Settings(
        epochs=FLAGS.search_epochs, seed=FLAGS.seed, num_threads=int(FLAGS.threads[0]),
        timing={k: FLAGS[k].value for k in ("min_runs", "min_seconds", "warmup_runs",
                                            "warmup_seconds")},
        budgets=budgets, data_settings=data_settings)
    strategy = strategy_lib.build("auto", None, 1)
    deadline = time.monotonic() + FLAGS.timeout if FLAGS.timeout else None
    measured = {}  # candidate key -> untrained hardware figures (this process)
    while True:
        with study.ask_lock(search_dir):
            done = study.counted(the_study)
            if done >= FLAGS.trials or (deadline and time.monotonic() > deadline):
                break
            trial = the_study.ask()
        run_one(trial, the_study, search_space, objectives, budgets, settings, dataset,
                strategy, search_dir, measured)
    write_outputs(the_study, budgets, search_dir, dataset, data_settings, objectives)


def run_one(trial, the_study, search_space, objectives, budgets, settings, dataset, strategy,
            search_dir, measured):
    """One trial: hardware first (reject over budget untrained), then train and measure."""
    import optuna

    from tftool.search import hardware, space, study, trial as trial_lib

    candidate = space.suggest(trial, search_space)
    same = study.same_candidate(the_study, trial)
    if same is not None:  # TPE proposes a finished candidate again: its figures, no retraining
        for key in ("candidate", "workdir", "untrained", "trained", "over",
                    "rejected_before_training", "train_seconds"):
            if key in same.user_attrs:
                trial.set_user_attr(key, same.user_attrs[key])
        trial.set_user_attr("same_as", same.number)
        for name, value in same.constraints.items():
            trial.set_constraint(name, value)
        the_study.tell(trial, same.values)
        print(f"trial {trial.number}: {candidate.describe()}: the same candidate as trial "
              f"{same.number}, its figures reused", flush=True)
        return
    workdir = (trial.user_attrs.get("workdir")
               or os.path.join(search_dir, f"trial_{trial.number}"))
    for key, value in {"candidate": candidate.describe(), "workdir": workdir,
                       **study.identity()}.items():
        trial.set_user_attr(key, value)
    os.makedirs(workdir, exist_ok=True)
    log = os.path.join(workdir, "trial.log")
    try:
        with study.heartbeat(search_dir, trial), open(log, "a") as f, \
                contextlib.redirect_stdout(f):
            key = candidate.key() + hardware.conversion_mode(candidate.variant)
            if key not in measured:
                measured[key] = hardware.measure(candidate, dataset, settings.num_threads,
                                                 settings.timing, budgets, settings.seed)
            untrained = measured[key]
            trial.set_user_attr("untrained", untrained)
            over = budgets.over(untrained)
            if over:  # rejected before any training: infeasible, accuracy unknown (0)
                figures = {**untrained, "validation_accuracy": 0.0}
                trial.set_user_attr("rejected_before_training", True)
            else:
                start = time.perf_counter()
                figures = trial_lib.run(candidate, workdir, dataset, strategy, settings)
                trial.set_user_attr("train_seconds", time.perf_counter() - start)
                trial.set_user_attr("trained", figures)
                over = budgets.over(figures)
            trial.set_user_attr("over", over)
            for name, value in budgets.violations(figures).items():
                trial.set_constraint(name, value)
    except (UserError, ValueError, RuntimeError, OSError) as e:
        trial.set_user_attr("error", str(e).splitlines()[0][:300])
        the_study.tell(trial, state=optuna.trial.TrialState.FAIL)
        print(f"trial {trial.number}: {candidate.describe()}: failed ({str(e).splitlines()[0]}"
              f"; its log: {log})", flush=True)
        return
    values = {"accuracy": figures["validation_accuracy"],
              "latency": figures["latency_ms_p50"], "size": figures["size_bytes"]}
    the_study.tell(trial, [values[o] for o in objectives])
    if trial.user_attrs.get("rejected_before_training"):
        verdict = f"rejected before training ({'; '.join(over)})"
    else:
        interval = figures["validation_accuracy_interval"]
        verdict = (f"validation {figures['validation_accuracy']:.4f} [{interval[0]:.4f}, "
                   f"{interval[1]:.4f}]" + (f"; over budget: {'; '.join(over)}" if over
                                            else "; within budget"))
    print(f"trial {trial.number}: {candidate.describe()}: p50 "
          f"{figures['latency_ms_p50']:.4f} ms, {figures['size_bytes'] / 1024:.1f} KiB, "
          f"{verdict}", flush=True)


def write_outputs(the_study, budgets, search_dir, dataset, data_settings, objectives):
    """search.md, pareto.png, best.flags, summary.json; the chosen file's test accuracy."""
    from tftool import data, evaluate, stats
    from tftool.litert import Runner
    from tftool.search import report, study

    from tftool.search import space

    summary = study.summarize(the_study, budgets)
    test = None
    if summary.chosen is not None and summary.chosen["file"]:
        side = space.from_params(summary.chosen["params"]).image_size
        result = evaluate.evaluate(
            {"m": evaluate.tflite_scorer(Runner(model_path=summary.chosen["file"]))},
            data.test_batches(dataset, (side, side)), dataset.class_names)["m"]
        test = stats.accuracy_summary(int(round(result["accuracy"] * result["examples"])),
                                      result["examples"])
    points = [(r["validation_accuracy"], r["latency_ms_p50"]) for r in summary.front]
    reference = (0.0, max([r["latency_ms_p50"] for r in summary.rows
                           if r["latency_ms_p50"]] or [1.0]) * 1.1)
    hypervolume = study.hypervolume_2d(points, reference) if points else None
    shown = {"trials": len(summary.rows), "sampler": FLAGS.sampler,
             "epochs per trial": FLAGS.search_epochs, "threads": FLAGS.threads[0],
             "objectives": ", ".join(objectives)}
    io.write_text(os.path.join(search_dir, "search.md"),
                  report.markdown(summary, budgets, shown, test, hypervolume))
    io.write_bytes(os.path.join(search_dir, "pareto.png"),
                   report.pareto_png(summary, budgets, f"tftool-search: {dataset.name}"))
    io.write_text(os.path.join(search_dir, "summary.json"), study.to_json(summary))
    if summary.chosen is not None:
        io.write_text(os.path.join(search_dir, "best.flags"),
                      report.best_flags(summary.chosen, FLAGS.workdir, data_settings, test))
    print(f"{search_dir}/search.md: {len(summary.rows)} trials, {len(summary.front)} on the "
          f"feasible front, {summary.rejected_before_training} rejected before training "
          f"(≈ {summary.training_seconds_saved:.0f} s of training saved)", flush=True)
    if summary.chosen is None:
        print("no trial fits the budgets yet; widen the space (--search_widths, "
              "--search_image_sizes) or the budgets", flush=True)
        return
    chosen = summary.chosen
    interval = chosen["validation_accuracy_interval"]
    print(f"chosen: trial {chosen['number']}, {chosen['candidate']}: validation accuracy "
          f"{chosen['validation_accuracy']:.4f} [{interval[0]:.4f}, {interval[1]:.4f}], test "
          f"{test['accuracy']:.4f} [{test['low']:.4f}, {test['high']:.4f}], p50 "
          f"{chosen['latency_ms_p50']:.4f} ms; rebuild it with {search_dir}/best.flags",
          flush=True)


def cli_main():
    common.entry_point("tftool-search", NAMES, main, DEFAULTS)
