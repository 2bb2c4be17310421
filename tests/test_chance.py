"""Near-chance detection (chance.py), the stage runner's stop, export's refusal, the report."""
import json
import os

import pytest

from tftool import UserError, chance, models, stage_runner
from tftool.benchmark import report
from tftool.train import fit, strategy as strategy_lib


def test_thresholds():
    # 10 classes, 360 test images: margin max(3σ = 0.047, 0.09) -> below 0.19 is near chance.
    v = chance.near_chance(0.115, 10, 360, train_accuracy=0.916)
    assert v is not None and v.learned and v.threshold == pytest.approx(0.19)
    assert chance.near_chance(0.164, 10, 359, train_accuracy=0.925).learned  # lagging BN
    assert chance.near_chance(0.191, 10, 360) is None
    assert not chance.near_chance(0.12, 10, 360, train_accuracy=0.30).learned  # < 0.325
    assert chance.near_chance(0.12, 10, 360, train_accuracy=0.33).learned
    # A tiny test split widens the margin by its noise: 3σ = 0.16 on 32 images.
    assert chance.near_chance(0.25, 10, 32) is not None
    # 1,000 classes: twice chance, not a tenth of the way (10% is 100× chance, learned).
    assert chance.near_chance(0.0015, 1000, 50_000) is not None
    assert chance.near_chance(0.01, 1000, 50_000) is None
    # 2 classes: 0.5 + 5 points.
    assert chance.near_chance(0.54, 2, 1000) is not None
    assert chance.near_chance(0.56, 2, 1000) is None
    # 2 classes, 6 test images (a folder's drawn test split): 3σ = 0.61, so the threshold
    # was 1.11 and a perfect score was flagged; capped at 1, only a perfect score passes.
    assert chance.near_chance(1.0, 2, 6) is None
    assert chance.near_chance(5 / 6, 2, 6).threshold == 1.0
    assert chance.near_chance(0.5, 2, 12) is not None  # 12 images: threshold 0.93


def test_messages_name_both_figures_and_causes():
    learned = chance.near_chance(0.115, 10, 360, train_accuracy=0.916).message("W/float")
    assert "0.115" in learned and "0.916" in learned and "BatchNormalization" in learned
    assert "\n" not in learned
    stuck = chance.near_chance(0.1, 10, 360, train_accuracy=0.11).message()
    assert "did not learn" in stuck and "--learning_rate" in stuck


def test_bad_arguments():
    for args, match in (((0.5, 1, 10), "num_classes=1"), ((0.5, 10, 0), "num_test=0"),
                        ((1.5, 10, 10), "test_accuracy=1.5")):
        with pytest.raises(ValueError, match=match):
            chance.near_chance(*args)


def test_report_marks_variants_near_chance():
    entries = [{"variant": v, "format": "tflite", "accuracy": a, "delta_points": 0.0,
                "agreement": 1.0, "size_bytes": 1024, "gzip_bytes": 512, "p50_1": 1.0,
                "p50_all": 1.0, "speedup_keras": None, "speedup_float32": None,
                "throughput_ips": None, "pareto": False}
               for v, a in (("float32", 0.98), ("int8", 0.11))]
    text = report.summary_markdown(entries, "t", num_classes=10, num_test=360)
    assert "0.1100 ≈chance" in text and "0.9800 ≈chance" not in text and "guesses" in text
    assert "≈chance" not in report.summary_markdown(entries, "t")  # no class count: no mark


def _job(lr):
    # A learning rate of 1e-7 cannot move the weights in 1 epoch: a deliberately broken run.
    config = fit.TrainConfig(epochs=1, per_replica_batch_size=32, learning_rate=lr,
                             lr_schedule="constant", augment=False, bn_batches=5)
    return stage_runner.Job(stage="float", config=config,
                            build=lambda: models.small_cnn((8, 8, 1), 10, width=4))


def test_broken_run_is_stopped_and_kept_for_inspection(tmp_path, digits):
    context = stage_runner.Context(workdir=str(tmp_path), dataset=digits, image_size=(8, 8),
                                   strategy=strategy_lib.build("auto", None, 1))
    with pytest.raises(UserError, match=r"near chance .*did not learn.*--allow_chance_accuracy"):
        stage_runner.run(_job(1e-7), context)
    out = tmp_path / "float"
    assert not (out / "model.h5").exists() and not (out / "metrics.json").exists()
    assert (out / stage_runner.NEAR_CHANCE_MODEL).exists()
    # The override writes it, marked.
    context.allow_chance_accuracy = True
    context.overwrite = True
    metrics = stage_runner.run(_job(1e-7), context)
    assert (out / "model.h5").exists()
    marked = json.loads((out / "metrics.json").read_text())["near_chance"]
    assert marked["test_accuracy"] == metrics["test_accuracy"] < marked["threshold"]


def test_export_refuses_a_float_model_near_chance(tmp_path, digits):
    os.makedirs(tmp_path / "float")
    (tmp_path / "float" / "metrics.json").write_text(json.dumps(
        {"test_accuracy": 0.1, "history": {"accuracy": [0.9]}}))
    with pytest.raises(UserError, match=r"refusing to export.*0\.900.*allow_chance_accuracy"):
        chance.refuse_export(str(tmp_path), digits, allow=False)
    chance.refuse_export(str(tmp_path), digits, allow=True)  # warns only
    (tmp_path / "float" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.9}))
    chance.refuse_export(str(tmp_path), digits, allow=False)
