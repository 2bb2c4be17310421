"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1, as two processes of `tftool-train`."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO

TIMEOUT_S = 300  # both workers, start to finish; a digits run takes ~25 s on 2 busy cores


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def test_two_workers_train_in_sync_and_only_the_chief_writes(tmp_path, tfds_dir, digits):
    del digits  # prepared in tfds_dir first: two workers must not build it concurrently
    workdir = tmp_path / "w"
    ports = free_ports(2)
    args = [sys.executable, "-m", "tftool", "train", "--strategy=multi_worker",
            f"--workdir={workdir}", f"--data_dir={tfds_dir}", "--epochs=5",
            "--per_replica_batch_size=32"]
    logs = [open(tmp_path / f"worker{i}.log", "w+") for i in range(2)]
    procs = []
    start = time.monotonic()
    try:
        for i in range(2):
            env = {**os.environ, "TF_CONFIG": tf_config(ports, i)}
            procs.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=logs[i],
                                          stderr=subprocess.STDOUT, start_new_session=True))
        for p in procs:
            p.wait(timeout=max(1.0, TIMEOUT_S - (time.monotonic() - start)))
    finally:
        for p in procs:  # a worker whose peer died waits forever in a collective
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    texts = []
    for f in logs:
        f.seek(0)
        texts.append(f.read())
        f.close()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} failed:\n{texts[i][-3000:]}"

    # Both logs: 2 workers, 2 replicas in sync, and the same weights after training.
    sync = [re.search(r"task worker:(\d) \((chief|non-chief)\) of 2 workers, 2 replicas in sync: "
                      r"trained 5 epoch\(s\) this run, weights sha256 ([0-9a-f]{16})", t)
            for t in texts]
    assert all(sync), texts[0][-2000:]
    assert [m.group(2) for m in sync] == ["chief", "non-chief"]
    assert sync[0].group(3) == sync[1].group(3)  # identical weights on both workers

    float_dir = workdir / "float"
    metrics = json.loads((float_dir / "metrics.json").read_text())
    assert metrics["num_replicas"] == 2 and metrics["global_batch_size"] == 64
    # The global batch is 32 per replica × 2 workers: 1,295 train images (digits' 1,438 less
    # the validation share) // 64 = 20 steps per epoch.
    assert metrics["steps_per_epoch"] == 20 and len(metrics["history"]["loss"]) == 5
    assert metrics["test_accuracy"] >= 0.90
    assert metrics["weights_sha256"] == sync[0].group(3)  # written by the chief
    assert (float_dir / "model.h5").is_file()
    assert list((float_dir / "backup").iterdir()) == [float_dir / "backup" / "chief"]
    leftovers = [str(p) for p in workdir.rglob("*workertemp*")]
    assert not leftovers, leftovers  # the non-chief's temporary copies are gone


def test_multi_worker_without_tf_config(monkeypatch):
    from tftool import UserError
    from tftool.train import strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError) as e:
        strategy.build("multi_worker")
    assert str(e.value) == ("--strategy=multi_worker needs the TF_CONFIG environment variable; "
                            "see recipes/multi_worker.sh for the TF_CONFIG of each host")


@pytest.mark.parametrize("raw,message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "is not in its cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}',
     "is not in its cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": "0"}}',
     'task index "0" is not an integer'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0.5}}',
     "task index 0.5 is not an integer"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker"}}',
     'TF_CONFIG needs "task"'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', 'TF_CONFIG needs "task"'),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs "cluster"'),
    ('{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'worker' must be a non-empty list"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'worker' must be a non-empty list"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'worker' must be a non-empty list"),
    ("[1, 2]", "TF_CONFIG must be a JSON object"),
])
def test_bad_tf_config(raw, message, monkeypatch):
    from tftool import UserError
    from tftool.train import strategy

    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(UserError, match=message):
        strategy.tf_config()


def test_malformed_tf_config_is_one_line_from_the_entry_point(tmp_path, monkeypatch):
    from inprocess import run_main

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, '
                                    '"task": {"type": "worker", "index": "x"}}')
    result = run_main("train", f"--workdir={tmp_path}/w", "--strategy=multi_worker")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        'tftool-train: error: TF_CONFIG task index "x" is not an integer; see '
        'recipes/multi_worker.sh for the TF_CONFIG of each host']
    assert not os.path.exists(tmp_path / "w")
