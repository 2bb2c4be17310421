"""The search loop: ask a trial, measure the candidate untrained, train it unless it breaks a
hardware budget, tell the study; then search.md, pareto.png, best.flags and summary.json.

Processes sharing a study run this same loop: "count the trials, ask for one" happens under
study.ask_lock, stale trials (a dead process's) are failed and asked again once before each
count, and a trial's figures are reused when TPE proposes a finished candidate again.
"""
import dataclasses
import os
import time
import traceback
from typing import Optional

from tftool import UserError, fileio


@dataclasses.dataclass
class Search:
    """One process's view of a search (see tftool/cli/search.py for the flags)."""
    study: object
    storage: object
    space: object
    objectives: list
    settings: object  # trial.Settings (budgets among them)
    dataset: object
    strategy: object
    search_dir: str
    trials: int
    deadline: Optional[float] = None  # time.monotonic() after which no trial starts
    # where heartbeats and the ask lock live: beside the journal every process shares
    # (study.shared_dir), so processes with other workdirs see each other's trials alive
    shared_dir: Optional[str] = None

    @property
    def coordination_dir(self):
        return self.shared_dir or self.search_dir


def run(search):
    """Runs trials until the study counts search.trials (study.counted) or the deadline."""
    from tftool.search import study

    measured = {}  # candidate key + conversion -> untrained figures (this process)
    while True:
        with study.ask_lock(search.coordination_dir):
            failed = study.fail_stale(search.study, search.storage, search.coordination_dir)
            if failed:
                print(f"marked failed, whose process died: trial(s) "
                      f"{', '.join(map(str, failed))} (each asked again once, resuming its "
                      f"stages)", flush=True)
            if study.counted(search.study) >= search.trials or (
                    search.deadline and time.monotonic() > search.deadline):
                return
            trial = search.study.ask()
        run_one(search, trial, measured)


def _tell(search, trial, values=None, state=None):
    """study.tell, unless another process already failed the trial as stale."""
    import optuna

    try:
        search.study.tell(trial, values, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        print(f"trial {trial.number}: already marked failed by another process; its result "
              f"is dropped", flush=True)


def run_one(search, trial, measured):
    """One trial: hardware first (a candidate over a budget is rejected untrained), then
    the real run (trial.run); every outcome is told to the study, failures included."""
    import contextlib

    import optuna

    from tftool.search import hardware, space, study, trial as trial_lib

    try:
        candidate = space.suggest(trial, search.space)
    except ValueError as e:  # Optuna: a parameter's choices differ from the study's
        _tell(search, trial, state=optuna.trial.TrialState.FAIL)
        raise UserError(f"the search space differs from the one study "
                        f"{search.study.study_name!r} was started with ({e}); pass the same "
                        f"--search_* flags, or another --study_name") from e
    budgets = search.settings.budgets
    # a retry resumes its own workdir; any other repeat reuses the finished trial's figures
    same = (None if "retry_of" in trial.user_attrs
            else study.same_candidate(search.study, trial))
    if same is not None:  # TPE proposes a finished candidate again: its figures, no retraining
        for key in ("candidate", "workdir", "untrained", "trained", "over",
                    "rejected_before_training", "train_seconds"):
            if key in same.user_attrs:
                trial.set_user_attr(key, same.user_attrs[key])
        trial.set_user_attr("same_as", same.number)
        for name, value in same.constraints.items():
            trial.set_constraint(name, value)
        _tell(search, trial, same.values)
        print(f"trial {trial.number}: {candidate.describe()}: the same candidate as trial "
              f"{same.number}, its figures reused", flush=True)
        return
    workdir = (trial.user_attrs.get("workdir")
               or os.path.join(search.search_dir, f"trial_{trial.number}"))
    for key, value in {"candidate": candidate.describe(), "workdir": workdir,
                       **study.identity()}.items():
        trial.set_user_attr(key, value)
    os.makedirs(workdir, exist_ok=True)
    log = os.path.join(workdir, "trial.log")
    with study.heartbeat(search.coordination_dir, trial):  # until told: no stale race
        try:
            with open(log, "a") as f, contextlib.redirect_stdout(f):
                key = candidate.key() + "|" + hardware.conversion_mode(candidate.variant)
                if key not in measured:
                    measured[key] = hardware.measure(
                        candidate, search.dataset, search.settings.num_threads,
                        search.settings.timing, budgets, search.settings.seed)
                untrained = measured[key]
                trial.set_user_attr("untrained", untrained)
                over = budgets.over(untrained)
                if over:  # rejected before any training: infeasible, accuracy unknown (0)
                    figures = {**untrained, "validation_accuracy": 0.0}
                    trial.set_user_attr("rejected_before_training", True)
                else:
                    start = time.perf_counter()
                    figures = trial_lib.run(candidate, workdir, search.dataset,
                                            search.strategy, search.settings)
                    trial.set_user_attr("train_seconds", time.perf_counter() - start)
                    trial.set_user_attr("trained", figures)
                    over = budgets.over(figures)
                trial.set_user_attr("over", over)
                for name, value in budgets.violations(figures).items():
                    trial.set_constraint(name, value)
        except Exception as e:  # noqa: BLE001  (one candidate's failure ends only its trial)
            with open(log, "a") as f:
                f.write(traceback.format_exc())
            line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            trial.set_user_attr("error", line[:300])
            _tell(search, trial, state=optuna.trial.TrialState.FAIL)
            print(f"trial {trial.number}: {candidate.describe()}: failed ({line}; its log: "
                  f"{log})", flush=True)
            return
        values = {"accuracy": figures["validation_accuracy"],
                  "latency": figures["latency_ms_p50"], "size": figures["size_bytes"]}
        _tell(search, trial, [values[o] for o in search.objectives])
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


def write_outputs(search, workdir, data_settings, shown):
    """Writes search.md, pareto.png, summary.json and (with a feasible trial) best.flags into
    the search folder; measures the chosen file's test accuracy once.
    Returns: (study.Summary, test figures {"accuracy", "low", "high", "n"} or None)."""
    from tftool import data, evaluate, stats
    from tftool.litert import Runner
    from tftool.search import report, space, study

    budgets = search.settings.budgets
    summary = study.summarize(search.study, budgets)
    test = None
    chosen = summary.chosen
    if chosen is not None and chosen["file"] and os.path.isfile(chosen["file"]):
        side = space.from_params(chosen["params"]).image_size
        result = evaluate.evaluate(
            {"m": evaluate.tflite_scorer(Runner(model_path=chosen["file"]))},
            data.test_batches(search.dataset, (side, side)), search.dataset.class_names)["m"]
        test = stats.accuracy_summary(int(round(result["accuracy"] * result["examples"])),
                                      result["examples"])
    points = [(r["validation_accuracy"], r["latency_ms_p50"]) for r in summary.front]
    ceiling = 1.1 * max([r["latency_ms_p50"] for r in summary.rows if r["latency_ms_p50"]]
                        or [1.0])
    hypervolume = study.hypervolume_2d(points, (0.0, ceiling)) if points else None
    folder = search.search_dir
    fileio.write_text(os.path.join(folder, "search.md"),
                      report.markdown(summary, budgets, shown, test, hypervolume))
    fileio.write_bytes(os.path.join(folder, "pareto.png"),
                       report.pareto_png(summary, budgets, f"tftool-search: {search.dataset.name}"))
    fileio.write_text(os.path.join(folder, "summary.json"), study.to_json(summary))
    if chosen is not None:
        fileio.write_text(os.path.join(folder, "best.flags"),
                          report.best_flags(chosen, workdir, data_settings, test))
    return summary, test
