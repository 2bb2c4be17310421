"""train -> prune (2 replicas) -> quantize --from=pruned -> distill --baseline -> export ->
benchmark on digits through the real entry points, in-process, with tiny epochs."""
import json
import os

import pytest

from conftest import error_lines
from inprocess import run_main
from mediapipe_client import mediapipe_python  # noqa: F401  (fixture)

NEW_VARIANTS = ("pruned_int8", "pqat_int8", "student_int8", "student_baseline_int8")


@pytest.fixture(scope="module")
def compress_run(tmp_path_factory, tfds_dir):
    work = tmp_path_factory.mktemp("compress")
    workdir, export_dir = str(work / "w"), str(work / "exported")
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}"]
    steps = [
        ("train", ["--epochs=12"]),
        ("prune", ["--epochs=4", "--cpu_replicas=2", "--per_replica_batch_size=32"]),
        ("quantize", ["--from=pruned", "--epochs=1"]),
        ("distill", ["--epochs=6", "--baseline"]),
        # 4 pruning epochs may cost more than the default 1-point gate allows; the accuracy
        # bands are asserted below instead.
        ("export", [f"--export_dir={export_dir}", "--max_accuracy_drop=0.05",
                    "--variants=int8," + ",".join(NEW_VARIANTS)]),
        ("benchmark", [f"--export_dir={export_dir}", "--threads=1", "--batch_sizes=1",
                       "--xnnpack=on", "--min_runs=20", "--min_seconds=0.02",
                       "--warmup_runs=5", "--warmup_seconds=0"]),
    ]
    results = {}
    for module, args in steps:
        results[module] = run_main(module, *common, *args)
        assert results[module].returncode == 0, \
            f"{module} failed:\n{results[module].stderr[-3000:]}"
    return workdir, export_dir, results


def metrics(workdir, stage):
    return json.load(open(os.path.join(workdir, stage, "metrics.json")))


def test_pruned_stage_reaches_target_sparsity(compress_run):
    workdir, _, _ = compress_run
    m = metrics(workdir, "pruned")
    assert m["num_replicas"] == 2
    assert m["sparsity"] == pytest.approx(0.7, abs=0.01)
    assert m["pruned_layers"] == ["conv0_1", "conv1_0", "conv1_1"]
    assert m["layer_sparsity"]["conv0_0"] < 0.05 and m["layer_sparsity"]["logits"] < 0.05
    assert m["test_accuracy"] >= metrics(workdir, "float")["test_accuracy"] - 0.03
    assert os.listdir(os.path.join(workdir, "pruned", "logs", "pruning"))  # PruningSummaries
    assert "--target_sparsity=0.7" in open(os.path.join(workdir, "pruned", "flags.txt")).read()


def test_student_is_small_and_baseline_matches_it(compress_run):
    workdir, _, _ = compress_run
    student, baseline = metrics(workdir, "student"), metrics(workdir, "student_baseline")
    assert student["teacher_params"] >= 4 * student["params"]
    assert baseline["params"] == student["params"]
    assert student["epochs"] == baseline["epochs"] and student["seed"] == baseline["seed"]
    # tftool-distill's default: student and baseline both train on clean images (cli/distill.py)
    assert student["augment"] is False and baseline["augment"] is False
    assert student["test_accuracy"] >= 0.5 and baseline["test_accuracy"] >= 0.5  # 6 epochs


def test_benchmark_rows_of_the_new_variants(compress_run):
    _, export_dir, results = compress_run
    rows = {row["variant"]: row for row in
            json.load(open(os.path.join(export_dir, "benchmark.json")))}
    assert set(NEW_VARIANTS) <= set(rows)
    float_acc = rows["float"]["accuracy"]
    for variant in ("pruned_int8", "pqat_int8"):
        assert rows[variant]["accuracy"] >= float_acc - 0.03
        # the zeros survive BN folding, QAT and int8 conversion into the flatbuffer
        assert rows[variant]["sparsity"] >= 0.65  # default target 0.7
        pruned = [k["sparsity"] for k in rows[variant]["kernel_sparsity"]][1:-1]
        assert len(pruned) == 3 and min(pruned) >= 0.69
    assert rows["int8"]["sparsity"] < 0.05
    assert rows["pqat_int8"]["gzip_bytes"] <= 0.6 * rows["int8"]["gzip_bytes"]  # 0.53 measured
    assert rows["student_int8"]["size_bytes"] <= 0.25 * rows["int8"]["size_bytes"]
    table = open(os.path.join(export_dir, "benchmark.md")).read()
    assert "| pqat_int8 | tflite |" in table
    headers = [l for l in (table + results["benchmark"].stdout).splitlines()
               if l.startswith("| variant")]
    assert len(headers) == 2 and all("| sparsity |" in h for h in headers)  # rows and report
    # the report says what the distillation did, by its interval
    assert "student_int8 vs its baseline" in results["benchmark"].stdout


def unchanged(workdir, stage):
    folder = os.path.join(workdir, stage)
    return {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)}


@pytest.mark.parametrize("module,args,message", [
    ("prune", ["--target_sparsity=1.2"], "--target_sparsity must be in (0, 1)"),
    ("prune", ["--pruning_end_step=100000", "--overwrite"],
     "--pruning_end_step=100000 is after the run's last step"),
    ("distill", ["--temperature=0"], "--temperature must be > 0"),
    ("distill", ["--teacher=/no/such/workdir/float", "--overwrite"],
     "--teacher=/no/such/workdir/float: no model at /no/such/workdir/float/model.h5"),
])
def test_bad_flags_stop_with_one_line_and_overwrite_nothing(compress_run, tfds_dir, module,
                                                            args, message):
    workdir, _, _ = compress_run
    stages = ("pruned", "pqat") if module == "prune" else ("student", "student_baseline")
    before = {stage: unchanged(workdir, stage) for stage in stages}
    result = run_main(module, f"--workdir={workdir}", f"--data_dir={tfds_dir}", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert any(message in line for line in error_lines(result.stderr)), result.stderr[-2000:]
    assert {stage: unchanged(workdir, stage) for stage in stages} == before


def test_compressed_exports_load_and_agree_in_mediapipe(compress_run, digits, tmp_path,
                                                       mediapipe_python):
    import app_checks

    _, export_dir, _ = compress_run
    paths, pixels, labels = app_checks.write_rgb_pngs(digits, (8, 8), tmp_path / "png")
    accuracies = app_checks.check_exports(mediapipe_python, export_dir, "digits_small_cnn",
                                          paths, pixels, labels, digits.class_names,
                                          min_accuracy=0.5)
    assert set(NEW_VARIANTS) <= set(accuracies)
