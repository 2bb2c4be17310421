"""The Optuna multi-objective study behind `tftool-search`.

Objectives: maximise the exported file's validation accuracy, minimise its LiteRT p50 latency
(and, with "size" among the objectives, its file size). Budgets are constraints
(`Trial.set_constraint`, Optuna 5: a trial is feasible when every value is ≤ 0), so
`study.best_trials` is the Pareto front of the feasible trials. The default sampler is
Optuna 5's multi-objective TPE (TPESampler; NSGA-II and random on request). Pruners do not
apply to several objectives; instead a candidate over a hardware budget is rejected before it
trains (hardware.py) and recorded as an infeasible trial.

Storage: a journal file WORKDIR/search/journal.log by default (JournalFileBackend: processes
on one machine or one shared file system); an RDB URL (postgresql://, mysql://) lets processes
on several machines share a study (Optuna's docs advise against SQLite for parallel runs). A
killed search resumes from its storage. A trial whose process died is marked failed —
heartbeat files for the journal (each running trial's process touches
search/heartbeats/<trial> every HEARTBEAT_SECONDS), Optuna's own heartbeat for an RDB — and
asked again once, with its workdir, so its stages resume from their backup/; never more.
"""
import contextlib
import dataclasses
import json
import os
import socket
import threading
import time

# A running trial touches its heartbeat every HEARTBEAT_SECONDS; one whose heartbeat is older
# than GRACE_SECONDS is dead. The environment can shorten both (the kill-and-resume test does).
HEARTBEAT_SECONDS = float(os.environ.get("TFTOOL_SEARCH_HEARTBEAT_SECONDS", 10))
GRACE_SECONDS = float(os.environ.get("TFTOOL_SEARCH_GRACE_SECONDS", 60))
DIRECTIONS = {"accuracy": "maximize", "latency": "minimize", "size": "minimize"}
SAMPLERS = ("tpe", "nsga2", "random")
JOURNAL = "journal.log"


def storage(url, search_dir):
    """The Optuna storage: a journal file in `search_dir` (url None, or a path ending .log)
    or an RDB URL (with Optuna's heartbeat, so a dead trial is failed, and asked again once by
    retry_once).
    Raises: UserError: an RDB URL that cannot be opened (driver missing, server unreachable,
      bad URL), naming the URL and the fix."""
    import optuna
    from optuna.storages import journal

    from tftool import UserError

    path = journal_path(url, search_dir)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return optuna.storages.JournalStorage(journal.JournalFileBackend(path))
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=max(1, int(HEARTBEAT_SECONDS)),
            grace_period=max(2, int(GRACE_SECONDS)), heartbeat_stale_trial_callback=retry_once)
    except Exception as e:  # noqa: BLE001  (SQLAlchemy/driver errors of many types)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--storage={url}: cannot open it ({first[:200]}); check the URL and "
                        f"that the database server is reachable (PostgreSQL needs "
                        f"`pip install psycopg2-binary`)") from e


def retry_once(study, trial):
    """Asks a failed trial again once, with its params and workdir, unless it is itself a
    retry or failed by its own error (a deterministic failure is not retried)."""
    if ("retry_of" not in trial.user_attrs and "error" not in trial.user_attrs
            and trial.params):
        study.enqueue_trial(trial.params, user_attrs={
            "retry_of": trial.number, "workdir": trial.user_attrs.get("workdir")})


def sampler(name, seed):
    """TPE (Optuna 5's default for several objectives), NSGA-II or random, seeded."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")


def open_study(storage_obj, name, objectives, sampler_obj, settings):
    """Creates the study or loads it (a resumed search, or another process's).

    `settings` (budgets, epochs per trial, seed, threads: what the figures and constraints
    depend on) is recorded with a new study and must match a loaded one's.
    Raises: UserError: a loaded study with other objectives or settings (names them).
    """
    import optuna

    from tftool import UserError

    study = optuna.create_study(storage=storage_obj, study_name=name, sampler=sampler_obj,
                                directions=[DIRECTIONS[o] for o in objectives],
                                load_if_exists=True)
    names = study.metric_names
    if names is not None and list(names) != list(objectives):
        raise UserError(f"study {name!r} in this storage optimises {', '.join(names)}, not "
                        f"{', '.join(objectives)}; pass the same --search_objectives or "
                        f"another --study_name")
    recorded = study.user_attrs.get("settings")
    settings = json.loads(json.dumps(settings))  # as stored: JSON types
    if recorded is not None and recorded != settings:
        differ = sorted(k for k in set(recorded) | set(settings)
                        if recorded.get(k) != settings.get(k))
        raise UserError(f"study {name!r} was started with other {', '.join(differ)} "
                        f"({recorded}); pass the same budgets and --search_epochs, --seed, "
                        f"--threads, or another --study_name")
    if names is None:
        study.set_metric_names(list(objectives))
    if recorded is None:
        study.set_user_attr("settings", settings)
    return study


@contextlib.contextmanager
def heartbeat(search_dir, trial):
    """While the trial runs: touches search/heartbeats/<n> every HEARTBEAT_SECONDS (journal
    storage: another process reads its age in fail_stale) and records Optuna's own heartbeat
    (RDB storage)."""
    from tftool import internals

    with internals.optuna_heartbeat(trial), _file_heartbeat(search_dir, trial.number):
        yield


@contextlib.contextmanager
def _file_heartbeat(search_dir, trial_number):
    folder = os.path.join(search_dir, "heartbeats")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, str(trial_number))
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            with open(path, "a"):
                os.utime(path)
            stop.wait(HEARTBEAT_SECONDS)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=HEARTBEAT_SECONDS)
        with contextlib.suppress(OSError):
            os.remove(path)


def fail_stale(study, store, search_dir, now=None):
    """Marks failed every RUNNING trial whose process is gone and asks it again once.

    Journal storage: a trial is stale when its heartbeat file is older than GRACE_SECONDS
    (or missing after the grace period from its start); the trials failed here are asked
    again (retry_once). RDB storage: Optuna's heartbeat (optuna.storages.fail_stale_trials),
    whose heartbeat_stale_trial_callback is retry_once for the trials this process failed.
    Returns: the numbers of the trials failed here (journal; [] for an RDB).
    """
    import optuna
    from optuna.trial import TrialState

    from tftool import internals

    now = time.time() if now is None else now
    failed = []
    if isinstance(store, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)
        return []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = os.path.join(search_dir, "heartbeats", str(trial.number))
        last = (os.path.getmtime(beat) if os.path.exists(beat)
                else trial.datetime_start.timestamp())
        if now - last <= GRACE_SECONDS:
            continue
        try:
            store.set_trial_state_values(internals.optuna_trial_id(trial), TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process failed it first
        failed.append(trial)
    for trial in failed:
        retry_once(study, trial)
    return [t.number for t in failed]


def journal_path(url, search_dir):
    """The journal file of --storage=url (None: search_dir/journal.log; a path ending .log),
    or None for an RDB URL."""
    if url is None or url.endswith(".log"):
        return url or os.path.join(search_dir, JOURNAL)
    return None


def shared_dir(url, search_dir):
    """The folder every process sharing a journal sees: the journal file's own folder, else
    (an RDB) this process's search_dir."""
    path = journal_path(url, search_dir)
    return os.path.dirname(os.path.abspath(path)) if path else search_dir


@contextlib.contextmanager
def ask_lock(search_dir):
    """An exclusive lock around "count the trials, ask for one" for processes sharing a
    journal on one file system, so N trials are N between them (an RDB across machines may
    overshoot by the number of processes minus one)."""
    import fcntl

    os.makedirs(search_dir, exist_ok=True)
    with open(os.path.join(search_dir, ".ask.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def counted(study):
    """Trials that count toward --trials: complete ones, ones running now, and ones that
    failed by their own error (a stale trial's failure does not count: it is asked again).
    Counting failures bounds a search whose every candidate fails."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (TrialState.COMPLETE, TrialState.RUNNING)
               or (t.state == TrialState.FAIL and "error" in t.user_attrs))


def same_candidate(study, trial):
    """A finished (COMPLETE) trial with exactly `trial`'s params, or None. The space is small
    and categorical, so TPE proposes finished candidates again; their figures are reused."""
    from optuna.trial import TrialState

    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.number != trial.number and other.params == trial.params:
            return other
    return None


def identity():
    """{"host", "pid"} of this process, recorded with each trial it runs."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def hypervolume_2d(points, reference):
    """Hypervolume of (accuracy, latency) points, accuracy maximised and latency minimised,
    against `reference` = (accuracy floor, latency ceiling): the area the points dominate
    inside the reference box (Zitzler & Thiele 1998). Points outside the box add nothing."""
    floor, ceiling = reference
    inside = sorted((lat, acc) for acc, lat in points if acc > floor and lat < ceiling)
    area, best = 0.0, floor
    for i, (lat, acc) in enumerate(inside):
        best = max(best, acc)
        next_lat = inside[i + 1][0] if i + 1 < len(inside) else ceiling
        area += (next_lat - lat) * (best - floor)
    return area


@dataclasses.dataclass
class Summary:
    """What search.md, pareto.png and best.flags are made from."""
    rows: list
    front: list
    chosen: object
    rejected_before_training: int
    training_seconds_saved: float


def summarize(study, budgets):
    """Every trial as a row, the feasible Pareto front, the chosen trial (the most accurate on
    the front; ties: the faster) and what rejecting before training saved."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        trained = t.user_attrs.get("trained") or {}
        untrained = t.user_attrs.get("untrained") or {}
        constraints = list(t.constraints.values())
        rows.append({
            "number": t.number, "state": t.state.name, "params": dict(t.params),
            "candidate": t.user_attrs.get("candidate", ""),
            "rejected_before_training": bool(t.user_attrs.get("rejected_before_training")),
            "validation_accuracy": trained.get("validation_accuracy"),
            "validation_accuracy_interval": trained.get("validation_accuracy_interval"),
            "latency_ms_p50": trained.get("latency_ms_p50", untrained.get("latency_ms_p50")),
            "size_bytes": trained.get("size_bytes", untrained.get("size_bytes")),
            "flash_bytes": trained.get("flash_bytes", untrained.get("flash_bytes")),
            "arena_bytes": trained.get("arena_bytes", untrained.get("arena_bytes")),
            "untrained": untrained, "train_seconds": t.user_attrs.get("train_seconds"),
            "feasible": t.state == TrialState.COMPLETE and all(c <= 0 for c in constraints),
            "over": t.user_attrs.get("over", []), "file": trained.get("file"),
            "same_as": t.user_attrs.get("same_as"), "error": t.user_attrs.get("error"),
            "workdir": t.user_attrs.get("workdir")})
    front_numbers = {t.number for t in study.best_trials} if rows else set()
    for row in rows:
        # a repeat (same_as) shares its first run's point: the front lists that run once
        row["front"] = (row["number"] in front_numbers and row["feasible"]
                        and row["same_as"] is None)
    front = [r for r in rows if r["front"]]
    chosen = max(front, key=lambda r: (r["validation_accuracy"], -r["latency_ms_p50"]),
                 default=None)
    trained_times = [r["train_seconds"] for r in rows
                     if r["train_seconds"] and r["same_as"] is None]
    rejected = sum(r["rejected_before_training"] and r["same_as"] is None for r in rows)
    saved = rejected * (sum(trained_times) / len(trained_times)) if trained_times else 0.0
    return Summary(rows=rows, front=front, chosen=chosen, rejected_before_training=rejected,
                   training_seconds_saved=saved)


def to_json(summary):
    """summary.json's text: the Summary as JSON (non-JSON values as strings)."""
    return json.dumps(dataclasses.asdict(summary), indent=2, default=str)
