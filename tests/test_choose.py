"""Settings the validation split chooses: --target_sparsity=auto and --temperature=auto /
--hard_label_weight=auto (tftool/choose.py), through the real entry points, in-process."""
import json
import os

import pytest

from inprocess import run_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tfds_dir):
    work = tmp_path_factory.mktemp("choose")
    common = [f"--workdir={work}/w", f"--data_dir={tfds_dir}"]
    result = run_main("train", *common, "--epochs=8", "--width=8")
    assert result.returncode == 0, result.stderr[-3000:]
    return str(work), common


def test_auto_sparsity_climbs_the_ladder_on_validation_and_keeps_the_last_rung_in_the_gate(
        trained):
    work, common = trained
    args = [*common, "--target_sparsity=auto", "--epochs=3", "--learning_rate=1e-3",
            "--max_accuracy_drop=0.03"]  # enough fine-tuning that 0.5 holds on any seed
    result = run_main("prune", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(f"{work}/w/pruned/metrics.json"))
    auto = metrics["auto"]
    values = [c["value"] for c in auto["candidates"]]
    assert values == [0.5, 0.6, 0.7, 0.8, 0.9][:len(values)]  # in order, mildest first
    passed = [c["within_gate"] for c in auto["candidates"]]
    assert passed == [True] * (len(passed) - 1) + [passed[-1]]  # stops at the first failure
    chosen = auto["chosen"]
    assert chosen == max(c["value"] for c in auto["candidates"] if c["within_gate"])
    assert auto["split"] == "validation" and auto["max_accuracy_drop"] == 0.03
    for c in auto["candidates"]:  # the point estimate decides; the interval is recorded
        assert c["within_gate"] == (c["drop"] <= 0.03 + 1e-9)
        assert c["drop_interval"][0] <= c["drop"] <= c["drop_interval"][1]
    assert metrics["sparsity"] == pytest.approx(chosen, abs=0.02)  # the rung's own model
    assert metrics["test_examples"] == 359 and metrics["validation_examples"] == 143
    assert metrics["schedule"]["target_sparsity"] == chosen
    config = json.load(open(f"{work}/w/pruned/config.json"))
    assert config["target_sparsity"] == "auto"  # what was asked, so a re-run skips
    for value in values:  # each rung ran as its own stage, kept for inspection
        assert os.path.isfile(f"{work}/w/pruned_choices/sparsity_{value:g}/pruned/model.h5")
    again = run_main("prune", *args)
    assert again.returncode == 0 and "complete, skipped" in again.stdout
    # the card of the export says what was chosen and on which split
    # (gate off: this tests the card; an 8-epoch width-8 model is too weak for a 1-point gate)
    result = run_main("export", *common, f"--export_dir={work}/e", "--variants=pruned_int8",
                      "--max_accuracy_drop=1")
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.load(open(f"{work}/e/digits_small_cnn_pruned_int8.json"))
    assert card["chosen_on_validation"]["chosen"] == chosen


def test_auto_distillation_settings_come_from_a_short_grid_on_validation(trained):
    work, common = trained
    result = run_main("distill", *common, "--epochs=8", "--student_width=4",
                      "--temperature=auto", "--hard_label_weight=0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(f"{work}/w/student/metrics.json"))
    auto = metrics["auto"]
    assert [c["temperature"] for c in auto["candidates"]] == [1.0, 2.0, 4.0]
    assert {c["hard_label_weight"] for c in auto["candidates"]} == {0.5}
    best = max(auto["candidates"], key=lambda c: c["validation_accuracy"])
    assert auto["chosen"] == {"temperature": best["temperature"], "hard_label_weight": 0.5}
    assert auto["short_run_epochs"] == 2 and metrics["epochs"] == 8
    assert metrics["temperature"] == best["temperature"]  # the full run used the choice
    assert json.load(open(f"{work}/w/student/config.json"))["temperature"] == "auto"
    bad = run_main("distill", *common, "--temperature=hot")
    assert bad.returncode == 1 and "--temperature must be > 0 (e.g. 2) or auto" in bad.stderr
