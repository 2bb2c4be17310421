"""The most accurate model that fits a budget: `tftool-search` / `python -m tftool search`.

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
import dataclasses
import os
import time

from tftool import UserError
from tftool.benchmark import timing
from tftool.cli import flags as cli_flags, run as cli_run, shared

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + (
    "max_latency_ms", "max_size_kb", "max_flash_kb", "max_arena_kb", "min_accuracy", "trials",
    "timeout", "search_epochs", "storage", "study_name", "sampler", "search_objectives",
    "search_models", "search_widths", "search_alphas", "search_image_sizes", "search_variants",
    "search_sparsities", "threads", "timing", *cli_flags.TIMING_FLAGS, "seed")
# The quick timing, as make's benchmark (benchmark/timing.py TIMING): a trial's latency is one
# row; one thread count.
DEFAULTS = {**timing.flag_defaults("quick"), "threads": ["1"]}


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
        return shared.data_settings("search")
    except UserError as e:
        if "no float model config" not in str(e):
            raise
        return shared.data_settings("float")


def main(argv):
    del argv
    from tftool import data
    from tftool.search import hardware, runner, space, study, trial as trial_lib
    from tftool.train import strategy as strategy_lib

    budgets = hardware.Budgets(latency_ms=FLAGS.max_latency_ms, size_kb=FLAGS.max_size_kb,
                               flash_kb=FLAGS.max_flash_kb, arena_kb=FLAGS.max_arena_kb,
                               min_accuracy=FLAGS.min_accuracy)
    data_settings = settings_of_data()
    dataset = shared.load_data(data_settings)
    native = min(data.resolve_image_size(dataset, data_settings.get("image_size")))
    variants = FLAGS.search_variants
    if budgets.micro:  # TFLite Micro runs integer models only
        variants = [v for v in (variants or space.DEFAULT_VARIANTS) if v != "float16"]
    try:
        search_space = space.default_space(
            native, FLAGS.search_models, [int(v) for v in FLAGS.search_image_sizes or []],
            variants, [int(v) for v in FLAGS.search_widths or []],
            [float(v) for v in FLAGS.search_alphas or []],
            [float(v) for v in FLAGS.search_sparsities or []])
    except ValueError as e:
        raise UserError(f"search space: {e}") from e
    quiet_optuna()
    search_dir = os.path.join(FLAGS.workdir, "search")
    objectives = list(FLAGS.search_objectives)
    store = study.storage(FLAGS.storage, search_dir)
    timing_settings = shared.timing_settings()
    the_study = study.open_study(store, FLAGS.study_name, objectives,
                                 study.sampler(FLAGS.sampler, FLAGS.seed), {
                                     "budgets": dataclasses.asdict(budgets),
                                     "search_epochs": FLAGS.search_epochs, "seed": FLAGS.seed,
                                     "threads": FLAGS.threads[0],
                                     "timing": [timing_settings[k]
                                                for k in cli_flags.TIMING_FLAGS],
                                     "space": search_space.as_dict()})
    settings = trial_lib.Settings(
        epochs=FLAGS.search_epochs, seed=FLAGS.seed, num_threads=int(FLAGS.threads[0]),
        timing=timing_settings,
        budgets=budgets, data_settings=data_settings)
    search = runner.Search(
        study=the_study, storage=store, space=search_space, objectives=objectives,
        settings=settings, dataset=dataset, strategy=strategy_lib.build("auto", None, 1),
        search_dir=search_dir, trials=FLAGS.trials,
        shared_dir=study.shared_dir(FLAGS.storage, search_dir),
        deadline=time.monotonic() + FLAGS.timeout if FLAGS.timeout else None)
    runner.run(search)
    shown = {"sampler": FLAGS.sampler, "epochs per trial": FLAGS.search_epochs,
             "threads": FLAGS.threads[0], "objectives": ", ".join(objectives)}
    summary, test = runner.write_outputs(search, FLAGS.workdir, data_settings, shown)
    print(f"{search_dir}/search.md: {len(summary.rows)} trials, {len(summary.front)} on the "
          f"feasible front, {summary.rejected_before_training} rejected before training "
          f"(≈ {summary.training_seconds_saved:.0f} s of training saved)", flush=True)
    chosen = summary.chosen
    if chosen is None:
        print("no trial fits the budgets yet; widen the space (--search_widths, "
              "--search_image_sizes) or the budgets", flush=True)
        return
    interval = chosen["validation_accuracy_interval"]
    tested = (f", test {test['accuracy']:.4f} [{test['low']:.4f}, {test['high']:.4f}]"
              if test else "")
    print(f"chosen: trial {chosen['number']}, {chosen['candidate']}: validation accuracy "
          f"{chosen['validation_accuracy']:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]{tested}, "
          f"p50 {chosen['latency_ms_p50']:.4f} ms; rebuild it with {search_dir}/best.flags",
          flush=True)


def cli_main():
    cli_run.entry_point("tftool-search", NAMES, main, DEFAULTS)
