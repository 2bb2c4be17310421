"""The one stage runner, and every stage run through it in-process on a tiny setting
(width-4 models, 1–2 epochs of digits: seconds each)."""
import json
import os

import pytest

from inprocess import run_main
from tftool import UserError, stage_runner

# The tiny setting: every stage of the registry in seconds.
# --allow_chance_accuracy: a 1-epoch width-4 model may still guess (the chance guard,
# tftool/chance.py, would stop it); these tests check the stage mechanics, not accuracy.
TINY = ["--epochs=1", "--warmup_epochs=0", "--lr_schedule=constant", "--allow_chance_accuracy"]


def test_check_config_refuses_mixing_runs(tmp_path):
    stage_runner.check_config(str(tmp_path), {"dataset": "digits", "model": "small_cnn"})
    stage_runner.check_config(str(tmp_path), {"dataset": "digits", "model": "small_cnn"})
    with pytest.raises(UserError, match="--model=small_cnn, not mobilenet_v2"):
        stage_runner.check_config(str(tmp_path), {"dataset": "digits", "model": "mobilenet_v2"})
    stage_runner.check_config(str(tmp_path), {"dataset": "digits", "model": "mobilenet_v2"},
                              overwrite=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == "mobilenet_v2"


def test_stage_lock_refuses_a_second_trainer_and_frees_on_exit(tmp_path):
    with stage_runner.stage_lock(str(tmp_path)):
        with pytest.raises(UserError, match=rf"being trained by another process \(pid "
                                            rf"{os.getpid()}\)"):
            with stage_runner.stage_lock(str(tmp_path)):
                pass
    with stage_runner.stage_lock(str(tmp_path)):  # released: a later run gets it
        pass


def test_later_stages_inherit_the_float_data_settings(tmp_path):
    float_dir = tmp_path / "float"
    float_dir.mkdir()
    (float_dir / "config.json").write_text(json.dumps(
        {"dataset": "folder:/data", "data_dir": None, "manual_dir": None, "channels": 3,
         "image_size": 32, "skip_corrupt": True, "validation_fraction": 0.1}))
    settings = stage_runner.data_settings(str(tmp_path), "qat", {"dataset": None})
    assert settings["dataset"] == "folder:/data" and settings["image_size"] == 32
    assert settings["skip_corrupt"] is True
    with pytest.raises(UserError, match="--image_size=16 differs from the float model's "
                                        "--image_size=32"):
        stage_runner.data_settings(str(tmp_path), "qat", {"image_size": 16}, {"image_size"})
    old = json.loads((float_dir / "config.json").read_text())
    del old["validation_fraction"]  # a workdir from before validation splits: retrain it
    (float_dir / "config.json").write_text(json.dumps(old))
    with pytest.raises(UserError, match="trained by an older tftool.*--overwrite"):
        stage_runner.data_settings(str(tmp_path), "qat", {"dataset": None})
    with pytest.raises(UserError, match="no float model config in .*: run `tftool-train"):
        stage_runner.data_settings(str(tmp_path / "empty"), "qat", {})
    assert stage_runner.data_settings("w", "float", {})["dataset"] == "digits"


def test_a_workdir_that_recorded_no_size_runs_at_its_models_size(tmp_path, monkeypatch):
    """config.json said image_size null before sizes were recorded; the size was then the
    first image's, uncapped, and may not be what today's rule picks: the model's own input
    size is used, not a guess that would feed it the wrong shape."""
    import types

    import tf_keras as keras
    from absl import flags

    from tftool import data
    from tftool.cli import flags as cli_flags, shared

    (tmp_path / "float").mkdir()
    (tmp_path / "float" / "config.json").write_text(json.dumps({"image_size": None}))
    inputs = keras.Input((300, 400, 3))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs)).save(
        str(tmp_path / "float" / "model.h5"))
    values = flags.FlagValues()
    cli_flags.define(("workdir", "overwrite"), flag_values=values)
    values(["prog", f"--workdir={tmp_path}"])
    monkeypatch.setattr(shared, "FLAGS", values)
    photos = types.SimpleNamespace(image_shape=(300, 400, 3))  # today's rule: 168x224
    assert stage_runner.trained_image_size(str(tmp_path)) == [300, 400]
    assert shared.image_size(photos, {"image_size": None}) == (300, 400)
    assert shared.image_size(photos, {"image_size": 32}) == (32, 32)  # recorded: as recorded
    (tmp_path / "float" / "config.json").write_text(json.dumps({"image_size": [24, 32]}))
    assert shared.image_size(photos, {"image_size": None}) == data.capped_size(300, 400)


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory, tfds_dir):
    """A float model of the tiny setting, shared by the stage tests below."""
    workdir = str(tmp_path_factory.mktemp("tiny") / "w")
    result = run_main("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", "--width=4",
                      *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, [f"--workdir={workdir}", f"--data_dir={tfds_dir}"]


def metrics(workdir, stage):
    return json.loads(open(os.path.join(workdir, stage, "metrics.json")).read())


def test_float_stage_writes_its_folder(tiny_workdir):
    workdir, _ = tiny_workdir
    for name in ("model.h5", "metrics.json", "flags.txt", "config.json"):
        assert os.path.isfile(os.path.join(workdir, "float", name)), name
    m = metrics(workdir, "float")
    assert m["stage"] == "float" and m["epochs"] == 1 and m["epochs_this_run"] == 1
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["test_loss"] > 0
    assert m["class_names"] == [str(i) for i in range(10)] and len(m["weights_sha256"]) == 16
    assert "--width=4" in open(os.path.join(workdir, "float", "flags.txt")).read()


@pytest.mark.parametrize("stage,args,qat", [
    ("qat", ["quantize"], True),
    ("pruned", ["prune", "--epochs=2", "--pruning_frequency=1"], False),
])
def test_each_compression_stage_runs_in_process(tiny_workdir, stage, args, qat):
    workdir, common = tiny_workdir
    result = run_main(args[0], *common, *TINY, *args[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    m = metrics(workdir, stage)
    assert m["stage"] == stage and m["epochs_this_run"] >= 1
    assert stage_runner.model_is_qat(workdir, stage) is qat
    if stage == "pruned":
        assert m["sparsity"] == pytest.approx(0.7, abs=0.02)
        assert m["schedule"]["target_sparsity"] == 0.7


def test_pqat_after_pruned_and_rerun_skips(tiny_workdir):
    workdir, common = tiny_workdir
    if not os.path.exists(os.path.join(workdir, "pruned", "model.h5")):
        assert run_main("prune", *common, *TINY, "--epochs=2",
                        "--pruning_frequency=1").returncode == 0
    result = run_main("quantize", *common, *TINY, "--from=pruned")
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(workdir, "pqat")["scheme"] == "prune_preserve"
    again = run_main("quantize", *common, *TINY, "--from=pruned")
    assert again.returncode == 0 and "complete, skipped" in again.stdout


def test_clustering_cqat_pcqat_and_2by4_run_in_process(tiny_workdir):
    """The compression stages through the runner: clustering keeps ≤ k values per kernel, CQAT and
    PCQAT reload (rebuilt from their input), 2:4 pruning records its pattern."""
    import numpy as np

    workdir, common = tiny_workdir
    if not os.path.exists(os.path.join(workdir, "pruned", "model.h5")):
        assert run_main("prune", *common, *TINY, "--epochs=2",
                        "--pruning_frequency=1").returncode == 0
    for args in (["cluster", "--number_of_clusters=8"], ["quantize", "--from=clustered"],
                 ["cluster", "--from=pruned", "--number_of_clusters=8"],
                 ["quantize", "--from=pruned_clustered"],
                 ["prune", "--sparsity_m_by_n=2,4"]):
        result = run_main(args[0], *common, *TINY, *args[1:])
        assert result.returncode == 0, (args, result.stderr[-3000:])
    unique = metrics(workdir, "clustered")["unique_values"]
    assert unique.pop("conv0_0") > 8  # the first conv is left alone (skip_layers default)
    assert unique and max(unique.values()) <= 8
    assert metrics(workdir, "pruned_2by4")["schedule"]["sparsity_m_by_n"] == [2, 4]
    # Clustering folds BN, so the clustered stages fine-tune on clean images (jobs.CLEAN_SOURCES)
    for stage, augment in (("pruned", True), ("clustered", False), ("cqat", False),
                           ("pruned_clustered", False), ("pcqat", False)):
        assert metrics(workdir, stage)["augment"] is augment, stage
    result = run_main("quantize", *common, *TINY, "--from=clustered", "--augment", "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(workdir, "cqat")["augment"] is True  # an explicit --augment wins
    for stage in ("cqat", "pcqat"):
        model = stage_runner.load_stage_model(workdir, stage)
        assert stage_runner.model_is_qat(workdir, stage) and model.count_params() > 0
    pruned = stage_runner.load_stage_model(workdir, "pruned_clustered")
    kernel = pruned.get_layer("conv1_0").kernel.numpy()
    assert np.mean(kernel == 0) >= 0.65 and len(np.unique(kernel)) <= 8  # default 0.7


def test_distill_trains_a_teacher_a_qat_student_and_a_baseline(tiny_workdir):
    workdir, common = tiny_workdir
    result = run_main("distill", *common, *TINY, "--teacher=small_cnn", "--teacher_width=8",
                      "--student_width=2", "--student_qat", "--baseline")
    assert result.returncode == 0, result.stderr[-3000:]
    student, baseline = metrics(workdir, "student"), metrics(workdir, "student_baseline")
    assert metrics(workdir, "teacher")["width"] == 8
    assert student["teacher"] == "small_cnn" and student["qat"] is True
    assert student["teacher_params"] > student["params"] == baseline["params"]
    assert student["hard_label_weight"] == 0.5 and student["temperature"] == 2
    assert stage_runner.model_is_qat(workdir, "student") is True


def test_a_stage_with_other_settings_is_refused_and_nothing_changes(tiny_workdir):
    workdir, common = tiny_workdir
    before = open(os.path.join(workdir, "float", "config.json")).read()
    result = run_main("train", *common, *TINY, "--width=8")
    assert result.returncode == 2
    assert "was made with --width=4, not 8" in result.stderr
    assert open(os.path.join(workdir, "float", "config.json")).read() == before
