"""A model tfmot cannot take: under make the stages that need tfmot are skipped with one line
each (naming the layer and what still works) and a skipped.json, exit 0; every post-training
variant is exported and benchmarked; by hand the same stage is one error line and exit 2
(cli/shared.py run_or_skip says why). In-process (tests/inprocess.py), as
tests/test_model_pipeline.py runs the pipeline of `make all`."""
import json
import os
import textwrap

import numpy as np
import pytest

from inprocess import run_main

# EinsumDense (a standard Keras layer, so model.h5 loads back without custom objects) is in
# neither tfmot's 8-bit quantize registry nor its PruneRegistry, and converts in every
# post-training mode, int16x8 included (PReLU, ELU and UnitNormalization do not).
BUILDERS = textwrap.dedent('''
    import tf_keras as keras


    def mixer_cnn(input_shape, num_classes, width=8):
        inputs = keras.Input(input_shape, name="image")
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.EinsumDense("abcd,de->abce", bias_axes="e", name="mixer",
                                     output_shape=(input_shape[0], input_shape[1], width))(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


    def plain_cnn(input_shape, num_classes, width=8):
        inputs = keras.Input(input_shape, name="image")
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
''')
POST_TRAINING = ("float32", "float16", "dynamic_range", "int8", "int16x8")
TRAIN = ("--epochs=3", "--warmup_epochs=0")
FINE_TUNE = ("--epochs=1",)


def lines(text):
    return [l for l in text.splitlines() if l.strip()]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tfds_dir):
    """`make all` + compress-all's chains on a model with an EinsumDense layer, as make runs
    them (TFTOOL_SHARED_FLAGS=1): {step: CompletedProcess}, workdir, export_dir, builders."""
    root = tmp_path_factory.mktemp("tfmot_skip")
    builders = root / "mixer_models.py"
    builders.write_text(BUILDERS)
    workdir, export_dir = str(root / "w"), str(root / "e")
    common = [f"--workdir={workdir}", f"--data_dir={tfds_dir}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFTOOL_SHARED_FLAGS", "1")
        steps = {"train": run_main("train", *common, f"--model={builders}:mixer_cnn", *TRAIN)}
        assert steps["train"].returncode == 0, steps["train"].stderr[-3000:]
        steps["quantize"] = run_main("quantize", *common, *FINE_TUNE)
        steps["prune"] = run_main("prune", *common, *FINE_TUNE)
        steps["pqat"] = run_main("quantize", *common, "--from=pruned", *FINE_TUNE)
        # make pcqat: clustering of the pruned model, then its QAT
        steps["pruned_clustered"] = run_main("cluster", *common, "--from=pruned", *FINE_TUNE)
        steps["pcqat"] = run_main("quantize", *common, "--from=pruned_clustered", *FINE_TUNE)
        steps["export"] = run_main("export", *common, f"--export_dir={export_dir}")
        steps["benchmark"] = run_main(
            "benchmark", *common, f"--export_dir={export_dir}", "--threads=1",
            "--batch_sizes=1", "--xnnpack=on", "--min_runs=3", "--min_seconds=0",
            "--warmup_runs=1", "--warmup_seconds=0")
    return steps, workdir, export_dir, str(builders), common


# (step, stage folder, the skipped input or None, how its one line starts)
SKIPS = [
    ("quantize", "qat", None, "tftool-quantize: skipped: tfmot cannot quantize layer 'mixer' "
                              "(EinsumDense) of {workdir}/float/model.h5: EinsumDense is not in "
                              "tfmot's 8-bit quantize registry; still works: "),
    ("prune", "pruned", None, "tftool-prune: skipped: tfmot cannot prune layer 'mixer' "
                              "(EinsumDense) of {workdir}/float/model.h5: EinsumDense is not in "
                              "tfmot's PruneRegistry"),
    ("pqat", "pqat", "pruned", "tftool-quantize: skipped: its input {workdir}/pruned was "
                               "skipped (tfmot cannot prune layer 'mixer' (EinsumDense)); "),
    ("pruned_clustered", "pruned_clustered", "pruned",
     "tftool-cluster: skipped: its input {workdir}/pruned was skipped (tfmot cannot prune "
     "layer 'mixer' (EinsumDense)); "),
    ("pcqat", "pcqat", "pruned_clustered",
     "tftool-quantize: skipped: its input {workdir}/pruned_clustered was skipped (tfmot cannot "
     "prune layer 'mixer' (EinsumDense)); "),
]


@pytest.mark.parametrize("step, stage, skipped_input, line", SKIPS, ids=[s[0] for s in SKIPS])
def test_under_make_a_tfmot_stage_is_skipped_with_one_line(pipeline, step, stage,
                                                           skipped_input, line):
    steps, workdir, _, _, _ = pipeline
    result = steps[step]
    assert result.returncode == 0, result.stderr[-3000:]
    (only,) = lines(result.stdout)
    assert only.startswith(line.format(workdir=workdir)), only
    assert "still works: every post-training variant (float32, float16, dynamic_range, int8, " \
           "int16x8), selective int8, the accuracy gate, the benchmark, micro" in only
    assert not [l for l in lines(result.stderr) if "error" in l.lower()], result.stderr
    folder = os.path.join(workdir, stage)
    assert not os.path.exists(os.path.join(folder, "model.h5"))
    assert not os.path.exists(os.path.join(folder, "metrics.json"))
    record = json.load(open(os.path.join(folder, "skipped.json")))
    assert record["stage"] == stage and record["reason"] in only
    if skipped_input:
        assert record["input_skipped"] == skipped_input
    else:
        assert record["layers"] == ["mixer (EinsumDense)"]


def test_every_post_training_variant_is_exported_and_runs_in_litert(pipeline, digits):
    from tftool.litert import Runner

    steps, workdir, export_dir, _, _ = pipeline
    assert steps["export"].returncode == 0, steps["export"].stderr[-3000:]
    assert "tftool-export: no variants of the stages make skipped: qat (tfmot cannot quantize " \
           "layer 'mixer' (EinsumDense)); pruned, pqat, pruned_clustered, pcqat (tfmot cannot " \
           "prune layer 'mixer' (EinsumDense))" in steps["export"].stdout
    images, _ = next(digits.test.batch(16).as_numpy_iterator())
    files = sorted(f for f in os.listdir(export_dir) if f.endswith(".tflite"))
    assert {f.rsplit("_mixer_cnn_", 1)[1][:-len(".tflite")] for f in files} >= set(POST_TRAINING)
    assert not [f for f in files if "qat" in f or "pruned" in f], files
    for variant in POST_TRAINING:
        runner = Runner(os.path.join(export_dir, f"digits_mixer_cnn_{variant}.tflite"))
        probabilities = runner(images)  # uint8 pixels
        assert probabilities.shape == (16, 10) and np.allclose(probabilities.sum(-1), 1,
                                                               atol=0.02)


def test_the_benchmark_and_report_treat_skipped_stages_as_absent(pipeline):
    steps, _, export_dir, _, _ = pipeline
    assert steps["benchmark"].returncode == 0, steps["benchmark"].stderr[-3000:]
    rows = json.load(open(os.path.join(export_dir, "benchmark.json")))
    assert {r["variant"] for r in rows if r["format"] == "tflite"} >= set(POST_TRAINING)
    report = open(os.path.join(export_dir, "report.md")).read()
    assert "Not in the table: the stages make skipped because tfmot cannot take the model " \
           "(their QAT, pruning or clustering variants): qat (tfmot cannot quantize layer " \
           "'mixer' (EinsumDense)); pruned, pqat" in report


def test_by_hand_the_same_stage_is_one_error_line_and_exit_2(pipeline):
    _, workdir, export_dir, _, common = pipeline
    result = run_main("prune", *common, *FINE_TUNE)
    assert result.returncode == 2 and not result.stdout.strip()
    (line,) = lines(result.stderr)
    assert line.startswith("tftool-prune: error: tfmot cannot prune 1 layer(s) of "
                           f"{workdir}/float/model.h5: mixer (EinsumDense); `tftool-check"), line
    # an input make skipped: the line says so and why, not "run tftool-prune first"
    result = run_main("quantize", *common, "--from=pruned", *FINE_TUNE)
    assert result.returncode == 2
    (line,) = lines(result.stderr)
    assert line.startswith(f"tftool-quantize: error: --from=pruned needs {workdir}/pruned/"
                           f"model.h5, which `tftool-prune` skipped: tfmot cannot prune layer "
                           f"'mixer' (EinsumDense) of "), line
    result = run_main("export", *common, f"--export_dir={export_dir}", "--variants=qat_int8")
    assert result.returncode == 2 and "which `tftool-quantize` skipped" in result.stderr


def test_a_later_run_that_goes_ahead_removes_the_skip_record(pipeline):
    """A model tfmot can take, trained over the float one (--overwrite): make's next
    quantize runs and the stale skipped.json goes."""
    _, workdir, _, builders, common = pipeline
    qat = os.path.join(workdir, "qat")
    assert os.path.exists(os.path.join(qat, "skipped.json"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFTOOL_SHARED_FLAGS", "1")
        result = run_main("train", *common, f"--model={builders}:plain_cnn", "--overwrite",
                          *TRAIN)
        assert result.returncode == 0, result.stderr[-3000:]
        result = run_main("quantize", *common, *FINE_TUNE)
    assert result.returncode == 0 and "skipped" not in result.stdout, result.stdout
    assert os.path.exists(os.path.join(qat, "model.h5"))
    assert not os.path.exists(os.path.join(qat, "skipped.json"))
    from tftool import stages

    assert "qat" not in stages.skipped_stages(workdir)
    assert "pruned" in stages.skipped_stages(workdir)  # not run again: its record stands
