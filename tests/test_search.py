"""tftool-search: the space, budgets as constraints, the study's storage, stale trials, and
whole searches on digits (tiny settings), in-process and as processes sharing a journal."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO
from inprocess import run_main

TINY = ["--search_epochs=2", "--search_image_sizes=8", "--min_seconds=0.05",
        "--warmup_seconds=0", "--min_runs=20"]


def test_space_suggests_conditional_parameters_and_round_trips():
    import optuna

    from tftool.search import space

    sp = space.default_space(8, variants=["int8", "pqat_int8"], widths=[4, 8])
    assert sp.models == ("small_cnn",) and sp.image_sizes == (8, 6, 4)
    assert space.default_space(32).models == ("small_cnn", "mobilenet_v2")
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        candidate = space.suggest(trial, sp)
        assert candidate.stages <= space.max_stages(candidate.image_size)
        assert (candidate.target_sparsity is None) == (candidate.variant != "pqat_int8")
        assert space.from_params(trial.params) == candidate
        seen.add((candidate.width, candidate.variant))
        study.tell(trial, [0.5, 1.0])
    assert len(seen) == 4
    with pytest.raises(ValueError, match="unknown search variant"):
        space.default_space(8, variants=["int4"])


def test_budgets_are_constraints_that_name_what_is_over():
    from tftool.search import hardware

    budgets = hardware.Budgets(latency_ms=1.0, size_kb=10, min_accuracy=0.9)
    figures = {"latency_ms_p50": 1.5, "size_bytes": 5 * 1024, "validation_accuracy": 0.95}
    violations = budgets.violations(figures)
    assert violations == pytest.approx({"latency_ms": 0.5, "size_kb": -5,
                                        "min_accuracy": -0.05})
    assert budgets.over(figures) == ["latency_ms over by 0.5 ms"]
    assert not budgets.micro and hardware.Budgets(flash_kb=64).micro


def test_hypervolume_of_a_2d_front():
    from tftool.search import study

    # two points (accuracy, latency) in the box accuracy > 0, latency < 10
    assert study.hypervolume_2d([(0.9, 2.0), (0.5, 1.0)], (0.0, 10.0)) == pytest.approx(
        (2.0 - 1.0) * 0.5 + (10.0 - 2.0) * 0.9)
    assert study.hypervolume_2d([(0.9, 12.0)], (0.0, 10.0)) == 0.0  # outside the box


def test_a_running_trial_whose_heartbeat_stopped_is_failed_and_asked_again_once(tmp_path):
    from optuna.trial import TrialState

    from tftool.search import study

    store = study.storage(None, str(tmp_path))
    s = study.open_study(store, "t", ["accuracy", "latency"], study.sampler("random", 0), {})
    dead = s.ask({"x": __import__("optuna").distributions.CategoricalDistribution([1, 2])})
    dead.set_user_attr("workdir", "/somewhere/trial_0")
    os.makedirs(tmp_path / "heartbeats")
    beat = tmp_path / "heartbeats" / "0"
    beat.write_text("")
    old = time.time() - study.GRACE_SECONDS - 5
    os.utime(beat, (old, old))
    assert study.fail_stale(s, store, str(tmp_path)) == [0]
    assert s.trials[0].state == TrialState.FAIL
    retry = s.ask()  # the enqueued retry comes first, with the workdir to resume
    assert retry.suggest_categorical("x", [1, 2]) == dead.params["x"]
    assert retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["workdir"] == "/somewhere/trial_0"
    os.utime(beat, (old, old))
    retry_beat = tmp_path / "heartbeats" / str(retry.number)
    retry_beat.write_text("")
    os.utime(retry_beat, (old, old))
    assert study.fail_stale(s, store, str(tmp_path)) == [retry.number]
    assert not s.get_trials(states=(TrialState.WAITING,))  # a retry is not retried again


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tfds_dir):
    """A 4-trial search on digits whose size budget rejects the widest candidate untrained."""
    work = tmp_path_factory.mktemp("search")
    common = [f"--workdir={work}/w", f"--data_dir={tfds_dir}"]
    result = run_main("search", *common, *TINY, "--trials=4", "--search_widths=8,64",
                      "--search_variants=int8", "--max_size_kb=40", "--seed=1")
    assert result.returncode == 0, result.stderr[-3000:]
    return str(work), common, result


def test_search_rejects_over_budget_candidates_before_training_and_writes_its_outputs(searched):
    work, _, result = searched
    folder = f"{work}/w/search"
    summary = json.load(open(f"{folder}/summary.json"))
    rows = summary["rows"]
    assert len(rows) == 4 and all(r["state"] == "COMPLETE" for r in rows)
    for row in rows:
        wide = row["params"]["width"] == 64
        assert row["rejected_before_training"] == wide  # 64: ~100 KiB int8, over 40 KiB
        assert row["feasible"] == (not wide)
        if wide:
            assert row["untrained"]["size_bytes"] > 40 * 1024 and row["file"] is None
            assert not os.path.exists(f"{folder}/trial_{row['number']}/float/model.h5")
        elif row["same_as"] is None:
            assert os.path.isfile(row["file"]) and row["validation_accuracy"] > 0.2
    md = open(f"{folder}/search.md").read()
    assert "rejected before training: size_kb over by" in md or not any(
        r["rejected_before_training"] for r in rows)
    assert re.search(r"Its test accuracy, measured once now: 0\.\d{4} \[", md)
    assert open(f"{folder}/pareto.png", "rb").read(4) == b"\x89PNG"
    flags = open(f"{folder}/best.flags").read().splitlines()
    assert flags[0].startswith("# tftool-search chose trial")
    assert "--width=8" in flags and "--model=small_cnn" in flags
    assert "chosen: trial" in result.stdout


def test_best_flags_rebuild_the_chosen_model(searched, tfds_dir):
    work, _, _ = searched
    result = run_main("train", f"--workdir={work}/best", f"--data_dir={tfds_dir}",
                      f"--flagfile={work}/w/search/best.flags", "--epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.load(open(f"{work}/best/float/config.json"))
    assert config["width"] == 8 and config["model"] == "small_cnn"


def _search_process(work, tfds_dir, *args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tftool", "search", f"--workdir={work}", f"--data_dir={tfds_dir}",
         *TINY, "--search_variants=int8", *args], cwd=REPO,
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)


def test_a_killed_search_resumes_in_two_processes_that_share_the_journal(tmp_path, tfds_dir):
    """A search killed during trial 1, then two processes on its journal: they end with the
    asked 3 complete trials between them, each trial run by one process once, the dead trial
    failed once and asked again in its own workdir (its stages resume there)."""
    import optuna
    from optuna.trial import TrialState

    from tftool.search import study

    env = {"TFTOOL_SEARCH_HEARTBEAT_SECONDS": "0.5", "TFTOOL_SEARCH_GRACE_SECONDS": "2"}
    work = f"{tmp_path}/w"
    args = ["--trials=3", "--search_widths=4,8,12", "--search_epochs=3"]
    first = _search_process(work, tfds_dir, *args, env=env)
    deadline = time.monotonic() + 300
    try:  # kill it while trial 1 trains (its float stage folder exists)
        while not os.path.isdir(f"{work}/search/trial_1/float"):
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = first.stdout.read()
    time.sleep(2.5)  # past the grace period: its heartbeat is stale
    procs = [_search_process(work, tfds_dir, *args, env=env) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("marked failed, whose process died: trial(s) 1" in o for o in outputs) == 1
    s = optuna.load_study(study_name="tftool", storage=study.storage(None, f"{work}/search"))
    trials = s.get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 1
    ran = [int(m) for out in [before, *outputs]
           for m in re.findall(r"^trial (\d+): ", out, re.M)]
    assert sorted(ran) == sorted(t.number for t in trials if t.state == TrialState.COMPLETE)
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 1)
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["workdir"].endswith("trial_1")  # its stages resumed there


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_dashboard_serves_the_study(searched):
    work, _, _ = searched
    port = _free_port()
    dashboard = os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    proc = subprocess.Popen([dashboard, "--storage-class", "JournalFileStorage", "--port",
                             str(port), "--host", "127.0.0.1", "--quiet",
                             f"{work}/w/search/journal.log"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "the dashboard did not answer within 60 s"
        assert [s["study_name"] for s in body["study_summaries"]] == ["tftool"]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_resumed_study_must_keep_its_objectives_and_settings(tmp_path):
    from tftool import UserError
    from tftool.search import study

    store = study.storage(None, str(tmp_path))
    settings = {"budgets": {"latency_ms": 1.0}, "search_epochs": 2, "seed": 0}
    study.open_study(store, "s", ["accuracy", "latency"], study.sampler("tpe", 0), settings)
    again = study.open_study(store, "s", ["accuracy", "latency"], study.sampler("tpe", 0),
                             settings)
    assert again.user_attrs["settings"] == settings
    with pytest.raises(UserError, match="optimises accuracy, latency, not accuracy, size"):
        study.open_study(store, "s", ["accuracy", "size"], study.sampler("tpe", 0), settings)
    with pytest.raises(UserError, match="started with other search_epochs"):
        study.open_study(store, "s", ["accuracy", "latency"], study.sampler("tpe", 0),
                         {**settings, "search_epochs": 5})


def test_failed_trials_count_so_a_search_of_failures_ends(tmp_path):
    from optuna.trial import TrialState

    from tftool.search import study

    store = study.storage(None, str(tmp_path))
    s = study.open_study(store, "f", ["accuracy", "latency"], study.sampler("random", 0), {})
    broken = s.ask()
    broken.set_user_attr("error", "a candidate that cannot be built")
    s.tell(broken, state=TrialState.FAIL)
    s.tell(s.ask(), [0.9, 1.0])
    assert study.counted(s) == 2  # its own error counts; a dead process's trial does not
