"""Surviving faults: SIGKILL mid-training, NaN loss, a full disk, bad files and bad flags.

Every case of docs/reference.md's "When something is wrong" table is here: it must stop with one
line (exit 2, no traceback) and leave what was already written intact. A case runs in its own
process where the process is the point (a SIGKILL, the full disk patched into a fresh
interpreter, --deterministic's process-wide op determinism, absl's own flag errors); the others
run the same entry point's main in-process (tests/inprocess.py), seconds instead of a start-up.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import REPO, error_lines, run_cli
from inprocess import run_main

KILL_TIMEOUT_S = 240


def last_line(result):
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = error_lines(result.stderr)
    assert lines, result.stderr[-3000:]
    return lines[-1]


def load_weights(path):
    import h5py  # model.h5 weights in file order, no TensorFlow graph needed

    arrays = []
    with h5py.File(path, "r") as f:
        f["model_weights"].visititems(
            lambda name, obj: arrays.append((name, obj[()])) if hasattr(obj, "shape") else None)
    return arrays


# ---- a small trained workdir + export shared by the file-level cases -------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, tfds_dir):
    work = tmp_path_factory.mktemp("faults")
    workdir, export_dir = str(work / "w"), str(work / "exported")
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}"]
    # in-process: what the cases below test is the refusal, not this set-up's process
    result = run_main("train", *common, "--epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_main("export", *common, f"--export_dir={export_dir}", "--variants=float32")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, export_dir, common


def snapshot(folder):
    """{relative path: bytes} of every file under folder, but the stage locks: a refused run
    takes the lock (and writes its pid there) before it reads config.json."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name == ".lock":
                continue
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


# ---- resume after SIGKILL --------------------------------------------------------------------
def test_sigkill_mid_training_then_rerun_resumes(tmp_path, tfds_dir):
    workdir = tmp_path / "w"
    args = [sys.executable, "-m", "tftool", "train", f"--workdir={workdir}",
            f"--data_dir={tfds_dir}", "--epochs=12"]
    marker = workdir / "float" / "backup" / "chief" / "checkpoint"  # written after each epoch
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        assert marker.exists(), "no epoch was backed up in time"
        time.sleep(0.2)  # into the next epoch: the kill lands mid-epoch
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (workdir / "float" / "model.h5").exists()

    # the resume runs in-process: the kill needed a process of its own, the resume does not
    result = run_main("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", "--epochs=12")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workdir / "float" / "metrics.json").read_text())
    assert metrics["epochs"] == 12
    assert 1 <= metrics["epochs_this_run"] <= 11  # resumed, not started over
    assert metrics["test_accuracy"] >= 0.93  # the band of an uninterrupted 12-epoch run (e2e)


# ---- determinism -----------------------------------------------------------------------------
def test_deterministic_runs_give_bit_identical_weights(tmp_path, tfds_dir):
    digests, weights = [], []
    for run in ("a", "b"):
        workdir = tmp_path / run
        result = run_cli("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}",
                         "--epochs=1", "--lr_schedule=cosine", "--deterministic", "--seed=7")
        assert result.returncode == 0, result.stderr[-3000:]
        digests.append(json.loads((workdir / "float" / "metrics.json").read_text())
                       ["weights_sha256"])
        weights.append(load_weights(workdir / "float" / "model.h5"))
    assert digests[0] == digests[1]
    assert [n for n, _ in weights[0]] == [n for n, _ in weights[1]] and len(weights[0]) > 10
    for (name, a), (_, b) in zip(*weights):
        assert a.dtype == np.float32 and a.tobytes() == b.tobytes(), name


# ---- NaN loss --------------------------------------------------------------------------------
def test_nan_in_epoch_2_keeps_epoch_1_backup_and_says_so(tmp_path, digits):
    import tensorflow as tf
    import tf_keras as keras

    from tftool import UserError, models
    from tftool.train import fit as trainer

    class PoisonEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                w = self.model.get_layer("logits").kernel
                w.assign(tf.fill(w.shape, float("nan")))

    config = trainer.TrainConfig(epochs=3, learning_rate=1e-3, lr_schedule="cosine",
                                 per_replica_batch_size=128, augment=False)
    with pytest.raises(UserError, match=r"loss became NaN/inf in epoch 2 \(batch 1\); stopped, "
                                        r".*keep epoch 1, the last finite one"):
        trainer.train(tf.distribute.get_strategy(),
                      lambda: models.build("small_cnn", (8, 8, 1), 10, width=4), digits, (8, 8),
                      config, str(tmp_path), extra_callbacks=[PoisonEpoch2()])
    backup = tmp_path / "backup" / "chief"
    assert sorted(p.name for p in backup.glob("*.index")) == ["ckpt-1.index"]  # epoch 1 only
    reader = tf.train.load_checkpoint(str(backup))
    values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()]
    floats = [v for v in values if np.issubdtype(np.asarray(v).dtype, np.floating)]
    assert sum(np.size(v) for v in floats) > 1000  # the model's weights are in it
    assert all(np.isfinite(v).all() for v in floats)
    model = models.build("small_cnn", (8, 8, 1), 10, width=4)
    model.load_weights(str(tmp_path / "ckpt" / "last.weights.h5"))
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_ckpt_holds_the_weights_fit_ended_with(tmp_path, digits):
    import tensorflow as tf

    from tftool import models
    from tftool.train import fit as trainer

    config = trainer.TrainConfig(epochs=2, learning_rate=1e-3, lr_schedule="cosine",
                                 per_replica_batch_size=128, augment=False)
    build = lambda: models.build("small_cnn", (8, 8, 1), 10, width=4)  # noqa: E731
    model, _ = trainer.train(tf.distribute.get_strategy(), build, digits, (8, 8), config,
                             str(tmp_path))
    saved = build()
    saved.load_weights(str(tmp_path / "ckpt" / "last.weights.h5"))
    for a, b in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nan_from_a_huge_learning_rate_is_one_line(tmp_path, tfds_dir):
    result = run_main("train", f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}", "--epochs=3",
                      "--learning_rate=1e38")
    assert result.returncode == 2
    assert last_line(result).startswith("tftool-train: error: loss became NaN/inf in epoch 1 (batch ")
    assert "lower --learning_rate (now 1e+38)" in last_line(result)
    assert not os.path.exists(f"{tmp_path}/w/float/model.h5")


# ---- disk full -------------------------------------------------------------------------------
def test_enospc_in_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    from tftool import UserError, fileio as workdir

    path = str(tmp_path / "m.tflite")
    workdir.write_bytes(path, b"old complete file")
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(UserError, match=r"no space left on the device writing .*m\.tflite \(the "
                                        r"previous file is kept\)"):
        workdir.write_bytes(path, b"new")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert open(path, "rb").read() == b"old complete file"
    assert os.listdir(tmp_path) == ["m.tflite"]


ENOSPC_EXPORT = textwrap.dedent("""
    import builtins, errno, sys
    import tftool.fileio as workdir

    class HalfThenFull:
        # writes half of what it is given, then fails as a full disk does
        def __init__(self, f): self.f = f
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        def __enter__(self): return self
        def __exit__(self, *exc): self.f.close()

    def full_disk_open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        return HalfThenFull(f) if "w" in mode and str(path).endswith(".tflite") else f

    workdir.open = full_disk_open  # the atomic writers' open; nothing else is touched
    from tftool.cli import export
    sys.argv = ["export"] + sys.argv[1:]
    export.cli_main()
""")


def test_disk_full_during_export_keeps_previous_file(trained):
    workdir, export_dir, common = trained
    # Other bytes than the export's (an unchanged file would not be written at all); the
    # real file is put back at the end for the module's other tests.
    path = f"{export_dir}/digits_small_cnn_float32.tflite"
    real = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(b"old complete file")
    before = snapshot(export_dir)
    result = subprocess.run([sys.executable, "-c", ENOSPC_EXPORT, *common,
                             f"--export_dir={export_dir}", "--variants=float32"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert last_line(result) == (
        f"tftool-export: error: no space left on the device writing {export_dir}/"
        f"digits_small_cnn_float32.tflite (the previous file is kept); free some space and run "
        f"again")
    assert snapshot(export_dir) == before  # same files, same bytes, no temporary left
    with open(path, "wb") as f:
        f.write(real)


# ---- benchmark given a bad .tflite -----------------------------------------------------------
def test_benchmark_refuses_truncated_tflite(trained, tmp_path):
    workdir, export_dir, common = trained
    bad_dir = tmp_path / "exported"
    shutil.copytree(export_dir, bad_dir)
    good = (bad_dir / "digits_small_cnn_float32.tflite").read_bytes()
    (bad_dir / "digits_small_cnn_float32.tflite").write_bytes(good[:len(good) // 2])
    (bad_dir / "digits_small_cnn_notes.tflite").write_text("not a model\n")
    result = run_main("benchmark", *common, f"--export_dir={bad_dir}", "--min_runs=5",
                      "--min_seconds=0", "--warmup_runs=1", "--warmup_seconds=0",
                      "--threads=1", "--batch_sizes=1", "--xnnpack=on")
    assert result.returncode == 2
    line = last_line(result)
    assert line.startswith(f"tftool-benchmark: error: {bad_dir}/digits_small_cnn_")
    assert "is not a valid .tflite model" in line and "export it again" in line
    assert not (bad_dir / "benchmark.json").exists()


def test_runner_refuses_non_tflite(tmp_path):
    from tftool import UserError
    from tftool.litert import Runner

    (tmp_path / "x.tflite").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(UserError, match="x.tflite is not a valid .tflite model"):
        Runner(model_path=str(tmp_path / "x.tflite"))


# ---- a workdir made with other settings ------------------------------------------------------
def test_train_refuses_a_workdir_made_with_another_input_size(trained):
    # (--dataset and --model: tests/test_e2e.py and tests/test_workdir.py; same check_config)
    workdir, _, common = trained
    before = snapshot(workdir)
    line = "was made with --image_size=8, not 16"  # the size it resolved and recorded
    result = run_main("train", *common, "--image_size=16")
    assert result.returncode == 2
    assert line in last_line(result) and "use another --workdir" in last_line(result)
    assert snapshot(workdir) == before


# ---- bad data and flags ----------------------------------------------------------------------
def test_corrupt_image_is_named_and_skip_corrupt_counts_it(digits_folder, digits, tmp_path):
    from tftool import UserError, data

    root = tmp_path / "imgs"
    shutil.copytree(digits_folder, root)
    victim = root / "train" / "class_3" / sorted(os.listdir(root / "train" / "class_3"))[0]
    victim.write_bytes(victim.read_bytes()[:40])  # a PNG cut off after its header
    with pytest.raises(UserError, match=rf"cannot decode {victim} .*--skip_corrupt"):
        data.load(f"folder:{root}")
    ds = data.load(f"folder:{root}", skip_corrupt=True)
    assert ds.num_train + ds.num_validation == digits.num_train + digits.num_validation - 1
    assert len(list(ds.train.as_numpy_iterator())) == ds.num_train  # decodes every image
    assert len(list(ds.validation.as_numpy_iterator())) == ds.num_validation

    result = run_main("train", f"--workdir={tmp_path}/w", f"--dataset=folder:{root}",
                      "--epochs=1")
    assert result.returncode == 2
    assert last_line(result).startswith(f"tftool-train: error: --dataset=folder:{root}: cannot decode "
                                        f"{victim} (")
    assert not os.path.exists(f"{tmp_path}/w/float/model.h5")


def test_folder_with_one_class_or_no_images(tmp_path):
    from PIL import Image

    from tftool import UserError, data

    for split in ("train", "test"):
        (tmp_path / split / "only").mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / split / "only" / "0.png")
    with pytest.raises(UserError, match="train/ has 1 class folder with images; a classifier "
                                        "needs at least 2"):
        data.load(f"folder:{tmp_path}")
    os.remove(tmp_path / "test" / "only" / "0.png")
    with pytest.raises(UserError, match=r"test/ has no class folders with \.png, \.jpg or "
                                        r"\.jpeg \(any case\) images; expected test/<class>/"):
        data.load(f"folder:{tmp_path}")


def test_catalog_data_absent_offline(tmp_path, monkeypatch):
    from tftool import UserError, data

    monkeypatch.setattr(data.sources, "_network_reachable", lambda *a, **k: False)
    with pytest.raises(UserError, match=r"--dataset=mnist: not prepared under .* network is "
                                        r"unreachable; .*tfds build mnist"):
        data.load("mnist", data_dir=str(tmp_path))
    with pytest.raises(UserError, match="--nodownload was given"):
        data.load("mnist", data_dir=str(tmp_path), download=False)


@pytest.mark.parametrize("args,line", [
    # (--epochs=0 and --learning_rate=-1: tests/test_e2e.py; every validator is the same path)
    # (--mixed_precision depends on the machine: tests/test_precision.py fakes both kinds)
    (["--freeze_backbone_epochs=-1"], "--freeze_backbone_epochs must be ≥ 0"),
    (["--preset=cifar"], "--preset: use one of auto, digits, photo"),
])
def test_bad_flags_are_one_line(args, line, tmp_path):
    result = run_cli("train", f"--workdir={tmp_path}/w", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    # absl's flag validators print "FATAL Flags parsing error: ..." then a --helpshort hint
    assert any(line in l for l in error_lines(result.stderr)), result.stderr[-2000:]
    assert not os.path.exists(f"{tmp_path}/w/float")


def test_the_first_training_command_works_with_defaults_and_an_explicit_warmup_is_checked_first(
        tmp_path, tfds_dir):
    """A bug: `tftool-train --epochs=1` failed on the default --warmup_epochs=1 after
    scanning the data and leaving an empty W/float/. The default warm-up now shrinks to the
    run; a warm-up the user set is refused before any data is read or folder made."""
    result = run_main("train", f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}",
                      "--epochs=1", "--width=8", "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(f"{tmp_path}/w/float/model.h5")
    # the input size is recorded as resolved (it was null when not given); a data set's own
    # size with nothing resized is not printed (a folder's size is: tests/test_data.py)
    assert "tftool-train: input" not in result.stdout, result.stdout
    assert json.load(open(f"{tmp_path}/w/float/config.json"))["image_size"] == 8
    metrics = json.load(open(f"{tmp_path}/w/float/metrics.json"))
    assert metrics["input_size"]["source"] == "native" and metrics["test_split"] == {
        "source": "test"}
    result = run_main("train", f"--workdir={tmp_path}/w2", "--dataset=folder:/no/such/folder",
                      "--epochs=1", "--warmup_epochs=1")
    assert result.returncode == 2
    assert error_lines(result.stderr)[-1] == (
        "tftool-train: error: --warmup_epochs=1 leaves no epoch after warm-up with --epochs=1; "
        "pass a smaller --warmup_epochs (e.g. 0)")  # not the missing folder: flags first
    assert not os.path.exists(f"{tmp_path}/w2")


def test_warmup_as_long_as_the_run_is_one_line(tmp_path, digits):
    import tensorflow as tf

    from tftool import UserError, models
    from tftool.train import fit as trainer

    config = trainer.TrainConfig(epochs=1, learning_rate=1e-3, lr_schedule="cosine_warmup",
                                 warmup_epochs=1.0)
    with pytest.raises(UserError, match=r"--warmup_epochs=1 leaves no epoch after warm-up with "
                                        r"--epochs=1"):
        trainer.train(tf.distribute.get_strategy(),
                      lambda: models.build("small_cnn", (8, 8, 1), 10, width=4), digits, (8, 8),
                      config, str(tmp_path))
