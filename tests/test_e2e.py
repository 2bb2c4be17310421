"""train -> quantize -> export -> benchmark on digits through the real entry points, run
in-process (tests/inprocess.py); a few subprocess runs check the command-line contract."""
import json
import os
import re

import pytest

from conftest import error_lines, run_cli
from inprocess import run_main
from mediapipe_client import mediapipe_python  # noqa: F401  (fixture)

VARIANTS = ("float32", "float16", "dynamic_range", "int8", "int16x8", "qat_int8")


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, tfds_dir):
    work = tmp_path_factory.mktemp("e2e")
    workdir, export_dir = str(work / "w"), str(work / "exported")
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}"]
    results = {
        "train": run_main("train", *common, "--epochs=12"),
        "quantize": run_main("quantize", *common, "--epochs=1"),
        "export": run_main("export", *common, f"--export_dir={export_dir}"),
        "benchmark": run_main("benchmark", *common, f"--export_dir={export_dir}",
                             "--threads=1,2", "--batch_sizes=1,4", "--min_runs=10",
                             "--min_seconds=0.02", "--warmup_runs=2", "--warmup_seconds=0"),
    }
    for stage, result in results.items():
        assert result.returncode == 0, f"{stage} failed:\n{result.stderr[-3000:]}"
    return workdir, export_dir, results


def test_stages_write_their_folders(pipeline_run):
    workdir, _, _ = pipeline_run
    for stage in ("float", "qat"):
        folder = os.path.join(workdir, stage)
        for name in ("model.h5", "metrics.json", "flags.txt", "config.json"):
            assert os.path.isfile(os.path.join(folder, name)), f"{stage}/{name}"
        assert os.listdir(os.path.join(folder, "logs"))  # TensorBoard
    flags_txt = open(os.path.join(workdir, "float", "flags.txt")).read()
    assert "--epochs=12" in flags_txt and "--model=small_cnn" in flags_txt
    metrics = json.load(open(os.path.join(workdir, "float", "metrics.json")))
    assert metrics["test_accuracy"] >= 0.93
    # validation and test, each with its 95% interval; the split is recorded for later stages
    for split, n in (("test", 359), ("validation", 143)):
        low, high = metrics[f"{split}_accuracy_interval"]
        assert low <= metrics[f"{split}_accuracy"] <= high and metrics[f"{split}_examples"] == n
    assert metrics["validation_split"]["source"] == "train"
    config = json.load(open(os.path.join(workdir, "float", "config.json")))
    assert config["validation_fraction"] == 0.1
    qat = json.load(open(os.path.join(workdir, "qat", "metrics.json")))
    assert qat["validation_examples"] == 143 and qat["validation_split"] == metrics[
        "validation_split"]
    assert metrics["epochs"] == 12 and len(metrics["history"]["images_per_second"]) == 12


def test_export_writes_every_variant_with_a_model_card(pipeline_run):
    _, export_dir, _ = pipeline_run
    labels = open(os.path.join(export_dir, "labels.txt")).read().split()
    assert labels == [str(i) for i in range(10)]
    for variant in VARIANTS:
        card = json.load(open(os.path.join(export_dir, f"digits_small_cnn_{variant}.json")))
        assert os.path.isfile(os.path.join(export_dir, card["file"]))
        assert card["input"]["shape"] == [1, 8, 8, 3] and card["input"]["rgb_to_gray_in_model"]
        assert card["class_names"] == labels
        assert card["input"]["dtype"] == ("uint8" if variant.endswith("int8") else "float32")
        assert card["output"]["meaning"] == "probabilities"
        assert card["metadata"]["embedded"] and card["metadata"]["color_space"] == "RGB"
        assert card["test_accuracy"] >= 0.9


def test_benchmark_rows(pipeline_run):
    workdir, export_dir, results = pipeline_run
    rows = json.load(open(os.path.join(export_dir, "benchmark.json")))
    keys = ["name", "variant", "format", "accuracy", "agreement", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "latency_ms_p90", "num_threads", "batch_size"]
    assert all(list(row)[:len(keys)] == keys for row in rows)
    # one row per (threads, batch, XNNPACK on/off): 4 for Keras, 8 per .tflite
    assert len(rows) == 4 + 8 * len(VARIANTS)
    assert {(r["num_threads"], r["batch_size"]) for r in rows} == {(1, 1), (1, 4), (2, 1), (2, 4)}
    for row in rows:
        assert row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["timed_runs"] >= 10 and isinstance(row["noisy"], bool)
        assert row["throughput_ips"] == pytest.approx(row["batch_size"] * 1e3
                                                      / row["latency_ms_p50"])
    by_variant = {row["variant"]: row for row in rows
                  if row["num_threads"] == 2 and row["batch_size"] == 1
                  and row["xnnpack"] in (True, None)}
    assert set(by_variant) == {"float", *VARIANTS}
    assert by_variant["float"]["format"] == "keras"
    float_acc = by_variant["float"]["accuracy"]
    # float32 TFLite computes the same function as Keras
    assert by_variant["float32"]["agreement"] >= 0.995
    assert by_variant["int8"]["accuracy"] >= float_acc - 0.03
    assert by_variant["qat_int8"]["accuracy"] >= float_acc - 0.03
    assert by_variant["int8"]["size_bytes"] <= 0.3 * by_variant["float32"]["size_bytes"]
    for variant in VARIANTS:
        if variant == "int16x8":  # LiteRT runs 16x8 on reference kernels (no XNNPACK path)
            continue
        assert by_variant[variant]["latency_ms_p50"] < by_variant["float"]["latency_ms_p50"]
    assert by_variant["int16x8"]["accuracy"] >= float_acc - 0.01
    # probabilities against probabilities (the Keras logits through a softmax)
    assert by_variant["float32"]["mean_abs_dprob"] < 1e-4
    assert 0 < by_variant["int8"]["mean_abs_dprob"] < 0.02  # dequantized, not raw int8 steps
    assert "## What to ship" in results["benchmark"].stdout  # the report, not every row
    assert "| qat_int8 | tflite |" in open(os.path.join(export_dir, "benchmark.md")).read()
    for row in rows:  # every accuracy carries its interval; every variant its paired change
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
        assert 0 <= row["validation_accuracy"] <= 1
        assert row["paired_vs_float"]["n"] == row["examples"]


def test_report_and_model_cards(pipeline_run):
    workdir, export_dir, _ = pipeline_run
    report_md = open(os.path.join(export_dir, "report.md")).read()
    lines = report_md.splitlines()
    every = lines[lines.index("## Every variant"):]
    table = [l for l in every if l.startswith("| ")]
    assert len(table) == 2 + len(VARIANTS)  # header, Keras float, one line per variant
    assert "speed-up vs TFLite float32" in table[0] and "★" in report_md
    # the recommendation block: one file per target with its path, the gate and its setting,
    # the input; the microcontroller command names this run's folders
    ship = lines[lines.index("## What to ship"):lines.index("## Every variant")]
    picks = [l for l in ship
             if l.startswith(("- **Phone**", "- **Edge CPU**", "- **Most accurate**"))]
    assert len(picks) == 3
    for line in picks:
        variant = re.search(r"digits_small_cnn_(\w+)\.tflite", line).group(1)
        path = os.path.join(export_dir, f"digits_small_cnn_{variant}.tflite")
        assert variant in VARIANTS and f"`{path}`" in line
    assert all(" RGB)" in line for line in picks[:2])  # the input it takes
    assert "`--gate=paired --max_accuracy_drop=0.01`" in report_md
    assert any(f"`make micro WORKDIR={workdir} EXPORT_DIR={export_dir}`" in l for l in ship)
    assert open(os.path.join(export_dir, "report.png"), "rb").read(4) == b"\x89PNG"
    card = json.load(open(os.path.join(export_dir, "digits_small_cnn_int8.json")))
    assert card["converter_versions"]["tensorflow"] and card["accuracy_gate"]["float_accuracy"]
    bench = card["benchmark"]
    assert bench["runtime_versions"]["ai-edge-litert"]
    assert bench["latency_ms_p50_1_thread"] > 0 and len(bench["latency"]) == 8
    assert bench["accuracy"] == card["test_accuracy"]
    low, high = card["test_accuracy_interval"]
    assert low < card["test_accuracy"] < high and card["test_examples"] == 359
    assert card["validation_examples"] == 143 and 0.8 < card["validation_accuracy"] <= 1
    gate = card["accuracy_gate"]
    assert gate["rule"] == "paired" and gate["drop_interval"][0] <= gate["drop"]
    assert bench["file_sha256"] == card["sha256"]


def test_labels_follow_the_output_index(pipeline_run):
    """labels.txt line i names output i: each class's own test images are mostly predicted as
    that output index by every exported model."""
    _, export_dir, _ = pipeline_run
    labels = open(os.path.join(export_dir, "labels.txt")).read().splitlines()
    for row in json.load(open(os.path.join(export_dir, "benchmark.json"))):
        assert list(row["per_class_accuracy"]) == labels
        assert min(row["per_class_accuracy"].values()) >= 0.6, row["variant"]


def test_gate_refuses_a_broken_int8_and_keeps_the_good_file(pipeline_run, tfds_dir):
    workdir, export_dir, _ = pipeline_run
    path = os.path.join(export_dir, "digits_small_cnn_int8.tflite")
    before = open(path, "rb").read(), open(path[:-len(".tflite")] + ".json").read()
    result = run_main("export", f"--workdir={workdir}", f"--data_dir={tfds_dir}",
                      f"--export_dir={export_dir}", "--variants=int8",
                     "--calibration_data=blank", "--calibration_steps=1")
    assert result.returncode == 2
    refusal = [l for l in error_lines(result.stderr) if "refused int8:" in l]
    assert len(refusal) == 1 and "below the float Keras model's" in refusal[0]
    assert "95% interval of the drop" in refusal[0] and "--gate=paired" in refusal[0]
    assert "kept the existing" in refusal[0]
    assert "the accuracy gate refused int8" in error_lines(result.stderr)[-1]
    after = open(path, "rb").read(), open(path[:-len(".tflite")] + ".json").read()
    assert after == before


def test_every_export_loads_and_agrees_in_mediapipe(pipeline_run, digits, tmp_path,
                                                    mediapipe_python):
    """The app's runtime: each variant, fed the test images as RGB pixels, classifies them
    like our runner, names the classes from its own metadata, at float − 1 point or better."""
    import app_checks

    _, export_dir, _ = pipeline_run
    paths, pixels, labels = app_checks.write_rgb_pngs(digits, (8, 8), tmp_path / "png")
    rows = json.load(open(os.path.join(export_dir, "benchmark.json")))
    float_accuracy = next(r["accuracy"] for r in rows if r["format"] == "keras")
    accuracies = app_checks.check_exports(mediapipe_python, export_dir, "digits_small_cnn",
                                          paths, pixels, labels, digits.class_names,
                                          min_accuracy=float_accuracy - 0.03)
    assert set(accuracies) == set(VARIANTS)


def test_rerun_skips_complete_stage(pipeline_run, tfds_dir):
    workdir, _, _ = pipeline_run
    before = os.path.getmtime(os.path.join(workdir, "float", "model.h5"))
    result = run_main("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", "--epochs=12")
    assert result.returncode == 0 and "complete, skipped" in result.stdout
    assert os.path.getmtime(os.path.join(workdir, "float", "model.h5")) == before


def test_later_stage_refuses_other_dataset(pipeline_run, tmp_path):
    workdir, _, _ = pipeline_run
    result = run_main("export", f"--workdir={workdir}", "--dataset=mnist",
                     f"--export_dir={tmp_path}")
    assert result.returncode != 0
    assert "--dataset=mnist differs" in error_lines(result.stderr)[-1]
    assert not os.listdir(tmp_path)


# (subprocess: absl's own flag parsing, as a user meets it; the data errors are tftool's
# UserError through the entry point's wrapper, the same in-process; a UserError's exit 2 and
# one line from a real process: tests/test_faults.py's full-disk export)
@pytest.mark.parametrize("args,message,own_process", [
    (["--dataset=nosuch"], "unknown data set", False),
    (["--dataset=folder:/no/such/dir"], "no such directory", False),
    (["--epochs=0"], "--epochs must be ≥ 1", True),
    (["--learning_rate=-1"], "--learning_rate must be > 0", True),
])
def test_bad_input_gives_one_clear_line(args, message, own_process, tmp_path):
    result = (run_cli if own_process else run_main)("train", f"--workdir={tmp_path}/w", *args)
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr
    assert any(message in line for line in lines), result.stderr
    assert not os.path.exists(f"{tmp_path}/w/float/model.h5")


# slow (make test-all): a 12-epoch accuracy band under 2 replicas. make test keeps what it
# checks: 2-replica training through a stage with its replica count and its accuracy
# (test_compress_e2e's prune stage, --cpu_replicas=2), mirrored variables in sync
# (test_strategy), a global batch of 64 over 2 replicas reaching 0.90 (test_multi_worker).
@pytest.mark.slow
def test_two_cpu_replicas_reach_the_band(tmp_path, tfds_dir):
    result = run_main("train", f"--workdir={tmp_path}", f"--data_dir={tfds_dir}",
                      "--cpu_replicas=2", "--epochs=12", "--per_replica_batch_size=32")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(os.path.join(tmp_path, "float", "metrics.json")))
    assert metrics["num_replicas"] == 2 and metrics["global_batch_size"] == 64
    assert metrics["test_accuracy"] >= 0.93


def _console(tool, *args):
    """Runs the installed console script tftool-<tool> (python -m tftool <tool> if absent)."""
    import subprocess
    import sys

    from conftest import REPO

    script = os.path.join(REPO, ".venv", "bin", f"tftool-{tool}")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "tftool", tool]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


def test_the_terminal_stays_quiet_and_verbosity_brings_the_logs_back(tmp_path, tfds_dir):
    """What a user reads: no TensorFlow start-up lines, no absl INFO lines, one line per kept
    epoch, one line per exported file; `--verbosity=0` shows the INFO lines again."""
    import re

    from tftool import quiet

    common = [f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}"]
    runs = {"train": _console("train", *common, "--epochs=3", "--width=8",
                              "--warmup_epochs=0"),
            "export": _console("export", *common, f"--export_dir={tmp_path}/e",
                               "--variants=int8,float16")}
    for tool, result in runs.items():
        assert result.returncode == 0, result.stderr[-2000:]
        lines = [l for l in (result.stdout + result.stderr).splitlines()
                 if not l.startswith("prepared the digits data set")]  # first use of tfds_dir
        noise = [l for l in lines if quiet.is_noise(l) or l.startswith("WARNING:tensorflow")
                 or re.match(r"[IW]\d{4} \d\d:\d\d", l) or "Warning:" in l]
        assert not noise, (tool, noise)
        assert len(lines) <= 4, (tool, lines)  # train: 2 epochs + result; export: 2 files
    assert any(l.startswith("float: epoch 1/3, loss ") for l in runs["train"].stdout.splitlines())
    assert all(l.startswith(f"{tmp_path}/e/digits_small_cnn_") for l in
               runs["export"].stdout.splitlines())
    verbose = _console("train", *common, "--epochs=3", "--width=8", "--warmup_epochs=0",
                       "--verbosity=0")
    assert verbose.returncode == 0 and "complete, skipped" in verbose.stdout
    assert re.search(r"^I\d{4} .*strategy", verbose.stderr, re.M), verbose.stderr[-2000:]


def test_re_export_keeps_the_benchmark_figures_and_marks_them_stale_when_the_file_changes(
        pipeline_run, tfds_dir, tmp_path):
    """A regression: `make micro` after `make all` re-exported every variant and dropped the
    benchmark figures from the cards. Now an unchanged file is not rewritten and its card
    keeps them; a changed file's card keeps them marked stale."""
    import shutil

    workdir, export_dir, _ = pipeline_run
    copy = str(tmp_path / "exported")
    shutil.copytree(export_dir, copy)
    path = os.path.join(copy, "digits_small_cnn_int8.tflite")
    card_path = path[:-len(".tflite")] + ".json"
    before = json.load(open(card_path))
    mtime = os.path.getmtime(path)
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}", f"--export_dir={copy}",
              "--variants=int8"]
    result = run_main("export", *common, "--micro")
    assert result.returncode == 0, result.stderr[-3000:]
    # the benchmark's report is written again with the micro figures, nothing timed again
    assert f"{copy}/report.md: updated with the microcontroller figures" in result.stdout
    assert re.search(r"\*\*Microcontroller\*\* .*: ship `\S+/micro/digits_small_cnn_int8_model"
                     r"_data\.cc`", open(os.path.join(copy, "report.md")).read())
    card = json.load(open(card_path))
    assert card["benchmark"] == before["benchmark"] and "stale" not in card["benchmark"]
    # a file the benchmark never measured (exported after it) stops the refresh too
    from tftool.benchmark import suite

    extra = os.path.join(copy, "digits_small_cnn_int8_selective.tflite")
    shutil.copy(path, extra)
    assert suite.refresh_report(copy, "digits_small_cnn") == (
        None, "digits_small_cnn_int8_selective.tflite was exported after its benchmark")
    os.remove(extra)
    assert card["micro"]["file_sha256"] == card["sha256"] and card["micro"]["fits"]
    assert os.path.getmtime(path) == mtime  # the same bytes: not rewritten
    result = run_main("export", *common, "--calibration_steps=7")  # other int8 ranges
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.load(open(card_path))
    assert card["sha256"] != before["sha256"]
    assert card["benchmark"]["stale"].startswith("measured on an earlier export")
    assert "run tftool-benchmark again" in card["benchmark"]["stale"]
    assert "run tftool-export --micro again" in card["micro"]["stale"]
    result = run_main("export", *common, "--calibration_steps=7", "--micro")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"{copy}/report.md: not updated (its benchmark measured an earlier "
            f"digits_small_cnn_int8.tflite): run `tftool-benchmark") in result.stdout


def test_onnx_exports_are_benchmarked_beside_litert(pipeline_run, tfds_dir, tmp_path):
    """tftool-export --onnx writes <name>_float32.onnx and _int8.onnx with cards; the
    benchmark times ONNX Runtime with the same loop and scores it on the same test images;
    float32 ONNX agrees with Keras on ≥ 99% of them; report.md compares the runtimes."""
    workdir, _, _ = pipeline_run
    export_dir = str(tmp_path / "e")
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}", f"--export_dir={export_dir}"]
    result = run_main("export", *common, "--variants=float32,int8", "--onnx")
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.load(open(os.path.join(export_dir, "digits_small_cnn_int8.onnx.json")))
    assert card["runtime"] == "onnxruntime" and card["input"]["dtype"] == "float32"
    assert card["test_accuracy_interval"][0] <= card["test_accuracy"]
    result = run_main("benchmark", *common, "--threads=1,2", "--batch_sizes=1",
                      "--xnnpack=on", "--min_runs=10", "--min_seconds=0.02",
                      "--warmup_seconds=0")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.load(open(os.path.join(export_dir, "benchmark.json")))
    onnx = {(r["variant"], r["num_threads"]): r for r in rows if r["format"] == "onnx"}
    assert set(onnx) == {(v, t) for v in ("float32", "int8") for t in (1, 2)}
    assert onnx[("float32", 1)]["agreement"] >= 0.99 and onnx[("int8", 1)]["agreement"] >= 0.95
    assert all(r["runtime"] == "onnxruntime" and r["latency_ms_p50"] > 0 for r in onnx.values())
    report_md = open(os.path.join(export_dir, "report.md")).read()
    assert "## Fastest runtime on this CPU" in report_md and "| float32 (ONNX) |" in report_md
    card = json.load(open(os.path.join(export_dir, "digits_small_cnn_float32.onnx.json")))
    assert card["benchmark"]["latency_ms_p50_1_thread"] > 0
