"""Settings the data set chooses, on the validation split: `--target_sparsity=auto` (a ladder of
sparsities) and `--temperature=auto` / `--hard_label_weight=auto` (a grid of distillation
settings).

Every candidate is a complete run of the stage, through the one stage runner, in a scratch
workdir W/<stage>_choices/<candidate>/ whose input stages are links to W's. So a candidate
that finished is skipped when the command runs again (a killed choice resumes candidate by
candidate), and the candidates' folders stay for inspection. The test split is never read to
choose: only the validation split (stats.paired_drop against the reference, or the
candidate's own validation accuracy).
"""
import os

from tftool import UserError, fileio, stage_runner, stages, stats


def scratch_context(context, stage, candidate, inputs):
    """A stage_runner.Context whose workdir is W/<stage>_choices/<candidate>/, with the
    `inputs` stages of W linked into it (a symlink per stage folder). A candidate is scored on
    the validation split only, and one near chance is written (marked) rather than stopping
    the choice: it simply scores low."""
    import dataclasses

    workdir = os.path.join(context.workdir, f"{stage}_choices", candidate)
    os.makedirs(workdir, exist_ok=True)
    for name in inputs:
        link = os.path.join(workdir, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(stages.stage_dir(context.workdir, name)), link)
    return dataclasses.replace(context, workdir=workdir, allow_chance_accuracy=True,
                               warn_chance=False, splits=("validation",))


def validation_correctness(model, context):
    """(accuracy, bool [n]) of a Keras logits model on the validation split."""
    from tftool import data, evaluate

    result = evaluate.evaluate({"m": evaluate.keras_scorer(model)},
                               data.test_batches(context.dataset, context.image_size,
                                                 split="validation"),
                               context.dataset.class_names)["m"]
    return result["accuracy"], result[evaluate.CORRECT]


def ladder(candidates, run, reference_correct, context, max_drop):
    """Runs `candidates` in order (e.g. rising sparsities) until one's validation accuracy
    drops more than `max_drop` below the reference's; returns (the last within it or None,
    records).

    The test is the point estimate (stats.gate_refuses' "point" rule), not the export gate's
    paired rule: that rule excuses a drop it cannot tell from noise, which is right before
    refusing a user's file and wrong for picking one. Measured on digits (143 validation
    images, an 8-epoch width-8 float model): the paired rule accepted the 0.8 rung's 8.4-point
    validation drop (interval [−1.1, 17.7]), whose test drop was 20 points. Each record keeps
    the interval, so the card shows how sure the choice was.

    Args:
      candidates: values, mildest first.
      run: value -> the scratch workdir's Keras model of that value (runs the stage).
      reference_correct: bool [n], the reference model's validation correctness.
      max_drop: the tolerated drop (fraction; --max_accuracy_drop).
    Returns:
      (value or None, [{"value", "validation_accuracy", "drop", "drop_interval",
      "within_gate"}]): the record of every candidate run.
    """
    chosen, records = None, []
    for value in candidates:
        accuracy, correct = validation_correctness(run(value), context)
        paired = stats.paired_drop(reference_correct, correct)
        passed = not stats.gate_refuses(paired, max_drop, "point")
        records.append({"value": value, "validation_accuracy": accuracy, "drop": paired.drop,
                        "drop_interval": [paired.low, paired.high], "within_gate": passed})
        if not passed:
            break
        chosen = value
    return chosen, records


def adopt(stage, source, settings, context, extra_metrics, free=()):
    """Makes W/<stage> the chosen candidate's run: its model.h5, and its metrics.json with
    `extra_metrics` added, written as the stage runner writes a stage (lock, config guard,
    atomic writes, model first).

    Args:
      source: the candidate's stage folder (W/<stage>_choices/<candidate>/<stage>).
      settings: what W/<stage>/config.json records (the user's flags: "auto", not the value).
    Raises: UserError: W/<stage> is locked or was made with other settings.
    """
    import contextlib

    from tftool import evaluate

    out = stages.stage_dir(context.workdir, stage)
    with (stage_runner.stage_lock(out) if context.chief else contextlib.nullcontext()):
        stage_runner.check_config(out, dict(settings), overwrite=context.overwrite,
                                  write=context.chief, free=free)
        model = fileio.load_model(os.path.join(source, stages.MODEL_FILE))
        metrics = fileio.read_json_object(os.path.join(source, "metrics.json")) or {}
        # the candidate was scored on validation only: score the stage's other splits (test)
        missing = tuple(s for s in context.splits if f"{s}_accuracy" not in metrics)
        metrics = {**metrics, **evaluate.keras_metrics(model, context.dataset,
                                                       context.image_size, splits=missing),
                   **extra_metrics}
        stage_runner.write_stage(out, model, metrics, context.flags_text, context.chief)
    return metrics


def skip_if_complete(stage, settings, context, inputs=(), free=()):
    """True (and the "complete, skipped" line) when W/<stage> was made with these settings and
    no input is newer: then no candidate needs to run. Raises UserError for other settings."""
    out = stages.stage_dir(context.workdir, stage)
    stage_runner.check_config(out, dict(settings), overwrite=context.overwrite, write=False,
                              free=free)
    complete, _ = stage_runner.is_complete(context.workdir, stage, inputs, context.overwrite)
    return complete


def require(chosen, what, records, fix):
    """Raises UserError when no candidate passed (names the best one tried and the fix)."""
    if chosen is None:
        from tftool import stats

        tried = ", ".join(f"{r['value']}: {stats.format_signed(-r['drop'] * 100)} points"
                          for r in records)
        raise UserError(f"{what}=auto: no candidate kept the validation accuracy within the "
                        f"accuracy gate ({tried}); {fix}")
    return chosen


def distillation_grid(temperature, weight, job, config, context):
    """--temperature=auto / --hard_label_weight=auto: a short run (a quarter of the epochs) of
    every grid point (optimize/distill.py TEMPERATURE_GRID × WEIGHT_GRID; a given value stays
    fixed) in scratch workdirs; the best validation accuracy wins (ties: the earlier point).

    Args:
      temperature, weight: a number or "auto".
      job: (T, w, TrainConfig) -> the student's stage_runner.Job.
      config: the full run's TrainConfig; context: the stage runner's Context.
    Returns: (T, w, the record for metrics.json's "auto").
    """
    import dataclasses

    from tftool.optimize import distill

    temperatures = distill.TEMPERATURE_GRID if temperature == "auto" else (temperature,)
    weights = distill.WEIGHT_GRID if weight == "auto" else (weight,)
    # a warm-up the user set for the full run is scaled to the short one (fit.py), not refused
    short = dataclasses.replace(config, epochs=max(1, config.epochs // 4), warmup_explicit=False)
    records = []
    for t in temperatures:
        for w in weights:
            scratch = scratch_context(context, "student", f"T{t:g}_w{w:g}", ["float"])
            stage_runner.run(job(t, w, short), scratch)
            metrics = stages.read_metrics(scratch.workdir, "student")
            records.append({"temperature": t, "hard_label_weight": w,
                            "validation_accuracy": metrics["validation_accuracy"],
                            "validation_accuracy_interval":
                                metrics["validation_accuracy_interval"]})
    best = max(records, key=lambda r: r["validation_accuracy"])  # max keeps the first of ties
    print(f"distillation auto: chose --temperature={best['temperature']:g} "
          f"--hard_label_weight={best['hard_label_weight']:g} (validation accuracy "
          f"{best['validation_accuracy']:.4f} after {short.epochs} of {config.epochs} epochs; "
          f"{len(records)} grid points)", flush=True)
    return best["temperature"], best["hard_label_weight"], {
        "parameters": ["temperature", "hard_label_weight"], "split": "validation",
        "chosen": {"temperature": best["temperature"],
                   "hard_label_weight": best["hard_label_weight"]},
        "short_run_epochs": short.epochs, "candidates": records}
