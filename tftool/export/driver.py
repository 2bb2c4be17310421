"""Which variants to export, and exporting them: convert, evaluate, gate, write.

`export(...)` is what `tftool-export` runs: every requested variant of every stage in the
registry (stages.py) is converted (convert.py), all of them are evaluated on the test split
in one streamed pass beside the float Keras model (evaluate.py), and each that passes the
accuracy gate (gate.py) is written with its model card (card.py); a refused variant is not
written, so an earlier file of that name stays as it was. The same model for other runtimes:
onnx_export.py (ONNX Runtime) and micro_export.py (TensorFlow Lite Micro firmware sources).
"""
import os

import tftool
from tftool import UserError, evaluate, fileio, stage_runner, stages, stats
from tftool.export import card, convert, gate


def available(workdir):
    """Every variant WORKDIR can give: its stage has a model of the kind the mode converts.
    (int8_selective is never asked for: export makes it when the gate refuses int8.)"""
    return [v for v, (stage, _) in stages.VARIANTS.items()
            if stages.has_model(workdir, stage)
            and stages.fits(v, stage_runner.model_is_qat(workdir, stage))]


def resolve(workdir, requested):
    """The variants to export: `requested`, or (None) every variant WORKDIR can give; then
    one line names the stages make skipped because tfmot cannot take the model
    (stages.skipped_summary): they are absent, not an error.

    Raises:
      UserError: no float model (the accuracy gate compares with it); an unknown variant, a
        requested variant whose stage has no model, or whose model is (not) QAT-wrapped; each
        names the fix.
    """
    if not stages.has_model(workdir, "float"):
        raise UserError(stages.missing_model_message(workdir, "float", "tftool-export"))
    if requested is None:
        skipped = stages.skipped_summary(workdir)
        if skipped:
            print(f"tftool-export: no variants of the stages make skipped: {skipped}",
                  flush=True)
        return available(workdir)
    for variant in requested:
        if variant not in stages.VARIANTS:
            raise UserError(f"--variants: unknown variant {variant!r}; choose from "
                            f"{', '.join(stages.VARIANTS)}")
        stage, _ = stages.VARIANTS[variant]
        if not stages.has_model(workdir, stage):
            raise UserError(f"variant {variant}: "
                            + stages.missing_model_message(workdir, stage)
                            + f", or leave {variant} out of --variants")
        qat = stage_runner.model_is_qat(workdir, stage)
        if not stages.fits(variant, qat):
            other = [v for v in stages.get(stage).variants if v != variant]
            raise UserError(f"variant {variant} does not fit {os.path.join(workdir, stage)} "
                            f"(its model is {'' if qat else 'not '}QAT-wrapped); export "
                            f"{' or '.join(other)} instead")
    return list(requested)


def blank_representative_dataset(input_shape, num_samples):
    """A representative_dataset of `num_samples` constant black float32 [1, H, W, C] images.

    Calibrating on it gives int8 ranges that fit no real image: a deliberately broken
    variant, for checking that the accuracy gate stops it (--calibration_data=blank).
    """
    import numpy as np

    def gen():
        for _ in range(num_samples):
            yield [np.zeros((1, *input_shape), np.float32)]
    return gen


def calibration(calibration_data, dataset, image_size, num_samples, seed):
    """The representative_dataset of --calibration_data: "train" (or any value but "blank"):
    data.representative_dataset's `num_samples` training images (seeded); "blank":
    blank_representative_dataset, the deliberately broken calibration."""
    from tftool import data

    if calibration_data == "blank":
        return blank_representative_dataset(tuple(image_size) + (dataset.image_shape[-1],),
                                            num_samples)
    return data.representative_dataset(dataset, image_size, num_samples, seed)


def app_conversion(mode, rgb_input=True, output_kind="probabilities",
                   inference_input_type=None, inference_output_type=None):
    """convert.to_tflite keyword arguments of an app export in `mode`: RGB input (an in-model
    gray conversion for 1-channel models) unless rgb_input is False, probabilities or logits
    out, and for integer modes the I/O types (default uint8: raw camera pixels)."""
    kwargs = {"rgb_input": rgb_input, "output": output_kind}
    if mode in convert.INTEGER_MODES:
        kwargs.update(inference_input_type=inference_input_type,
                      inference_output_type=inference_output_type)
    return kwargs


def with_metadata(content, name, variant, stage, dataset, output_kind):
    """`content` with TFLite Model Metadata embedded (export/metadata_write.py): the labels as the
    output's TENSOR_AXIS_LABELS file, RGB (or grayscale) input properties, NormalizationOptions
    for float input, so MediaPipe Tasks and the Task Library read the file by itself.

    Returns: (bytes, None) or, for an input MediaPipe and the metadata schema's image input
      cannot describe (int8), (content unchanged, the reason).
    """
    from tftool.export import metadata_write

    try:
        return metadata_write.populate(
            content, name=f"{name}_{variant}",
            description=(f"Image classifier of {len(dataset.class_names)} classes trained on "
                         f"{dataset.name} by tftool; variant {variant} of the {stage} model."),
            version=tftool.__version__, labels=list(dataset.class_names),
            output_kind=output_kind, extra={"variant": variant, "stage": stage}), None
    except ValueError as e:
        return content, str(e).splitlines()[0]


def export(workdir, export_dir, name, dataset, image_size, variants, representative_dataset,
           max_accuracy_drop, conversion=None, selective=True, gate_rule="paired",
           splits=("test", "validation"), debugger=True):
    """Converts, evaluates, gates and writes `variants` into `export_dir`.

    Args:
      dataset: data.Dataset; image_size: (height, width) of the model input.
      variants: names from stages.VARIANTS (resolve()).
      representative_dataset: int8 calibration (data.representative_dataset).
      max_accuracy_drop: the gate's tolerance (fraction; 0.01 = 1 point).
      conversion: app_conversion's keyword arguments but `mode` (rgb_input, output_kind,
        inference_input_type, inference_output_type).
      selective: when the gate refuses int8, retry keeping its worst layers in float
        (export/debug.py, at most SELECTIVE_BUDGET, chosen on the validation split) and write
        int8_selective if that passes the gate on the test split.
      gate_rule: stats.GATE_RULES (export/gate.py).
      debugger: run LiteRT's QuantizationDebugger on the int8 conversion (the card's worst
        layers; one more conversion and a debug run of the model: seconds for a large one).
      splits: the splits every variant is scored on; the gate reads the first. tftool-export:
        test (the gate) and validation; a search trial: validation only (the test split is
        read once, for the chosen model, at the end of the search).
    Every variant and its gate reference (the float Keras model, or a student's own) score the
    test and the validation split in one streamed pass each; the gate compares them image by
    image on the test split. The int8 variant's card also gets the QuantizationDebugger's worst
    layers. A card keeps the "benchmark" and "micro" figures other commands wrote into it,
    marked stale when the file they measured changed (carry_over).
    Returns:
      (written: [path], refused: [(variant, one-line reason)]).
    Raises:
      UserError: a stage's model or metrics is damaged; a file cannot be written.
    """
    from tftool import data, progress
    from tftool.litert import Runner

    conversion = conversion or {}
    float_model = fileio.load_model(stages.model_path(workdir, "float"))
    models, contents, runners, notes = {"float": float_model}, {}, {}, {}
    for variant in progress.steps(variants, "export: converting", unit="variant"):
        stage, mode = stages.VARIANTS[variant]
        if stage not in models:
            models[stage] = stage_runner.load_stage_model(workdir, stage)
        raw = convert.to_tflite(models[stage], mode, representative_dataset,
                                **app_conversion(mode, **conversion))
        contents[variant], notes[variant] = with_metadata(
            raw, name, variant, stage, dataset, conversion.get("output_kind", "probabilities"))
        if notes[variant]:
            progress.write(f"{variant}: no app metadata embedded ({notes[variant]})")
        runners[variant] = Runner(model_content=contents[variant])
    # the gate's references: the float model, or a variant's own stage (loaded above)
    references = {gate.reference_stage(stages.VARIANTS[v][0]) for v in variants}
    scorers = {_keras_key(stage): evaluate.keras_scorer(models[stage])
               for stage in ["float", *sorted(references - {"float"})]}
    scorers.update({v: evaluate.tflite_scorer(r) for v, r in runners.items()})
    results = {split: evaluate.evaluate(scorers, data.test_batches(dataset, image_size,
                                                                   split=split),
                                        dataset.class_names, reference=_keras_key("float"))
               for split in splits}
    gated = splits[0]
    float_accuracy = results[gated][_keras_key("float")]["accuracy"]
    fileio.write_text(os.path.join(export_dir, "labels.txt"), "\n".join(dataset.class_names) + "\n")
    written, refused = [], []
    debugged = {}
    if "int8" in variants and debugger:  # per-layer int8 error, for the card and the report
        from tftool.export import debug

        debugged["int8"] = [{k: row[k] for k in ("layers", "op", "tensor", "rmse_scale",
                                                 "mean_abs_error", "range_ratio")}
                            for row in debug.layer_errors(
                                float_model, representative_dataset,
                                rgb_input=conversion.get("rgb_input", True),
                                output=conversion.get("output_kind", "probabilities"))[:5]]
    for variant in variants:
        stage = stages.VARIANTS[variant][0]
        reference = gate.reference_stage(stage)
        ref_key, ref_name = _keras_key(reference), gate.reference_name(reference)
        path = os.path.join(export_dir, f"{name}_{variant}.tflite")
        scores = {split: results[split][variant] for split in results}
        paired = stats.paired_drop(results[gated][ref_key][evaluate.CORRECT],
                                   scores[gated][evaluate.CORRECT])
        reason = gate.refusal(variant, paired, max_accuracy_drop, path, ref_name, gate_rule)
        if reason and variant == "int8" and selective and "validation" in results:
            progress.write(f"tftool-export: {reason}; trying {stages.SELECTIVE_VARIANT}, "
                           f"choosing its float layers on the validation split")
            fixed = _selective(float_model, representative_dataset, dataset, image_size,
                               results, max_accuracy_drop, name, conversion, splits)
            if fixed is None:
                refused.append((variant, reason))
                continue
            variant, (contents[variant], runners[variant], scores, kept) = fixed
            path = os.path.join(export_dir, f"{name}_{variant}.tflite")
            paired = stats.paired_drop(results[gated][ref_key][evaluate.CORRECT],
                                       scores[gated][evaluate.CORRECT])
            reason = gate.refusal(variant, paired, max_accuracy_drop, path, ref_name,
                                  gate_rule)
            if reason:
                refused.append((variant, reason))
                continue
            notes[variant] = None
            debugged[variant] = kept
        elif reason:
            refused.append((variant, reason))
            continue
        model_card = card.model_card(name, variant, stage, runners[variant], dataset,
                                     image_size, scores[gated]["accuracy"],
                                     scores[gated]["examples"], contents[variant],
                                     notes[variant])
        if gated != "test":  # a search trial: only the splits it was scored on
            model_card.pop("test_accuracy"), model_card.pop("test_examples")
        model_card.update(card.accuracy_section(scores))
        model_card["training"] = card.training_section(stages.read_metrics(workdir, "float"))
        if variant in debugged:
            key = ("layers_kept_float" if variant == stages.SELECTIVE_VARIANT
                   else "quantization_debugger_worst")
            model_card[key] = debugged[variant]
        model_card["accuracy_gate"] = gate.section(paired, gate_rule, max_accuracy_drop,
                                                   ref_name, float_accuracy)
        chosen = (stages.read_metrics(workdir, stage) or {}).get("auto")
        if chosen:  # --target_sparsity=auto, --temperature=auto: what the validation chose
            model_card["chosen_on_validation"] = chosen
        card_path = os.path.splitext(path)[0] + ".json"
        model_card = card.carry_over(model_card, card_path, contents[variant])
        if not fileio.same_bytes(path, contents[variant]):  # unchanged bytes keep their mtime
            fileio.write_bytes(path, contents[variant])
        fileio.write_json(card_path, model_card)
        versus = "float" if reference == "float" else f"the Keras {reference} model"
        progress.write(f"{path}: {len(contents[variant]) / 1024:.1f} KiB, {gated} accuracy "
                       f"{stats.format_accuracy(scores[gated]['accuracy'], paired.n)}, "
                       f"vs {versus} {paired.describe(counts=False)}")
        written.append(path)
    return written, refused


def _keras_key(stage):
    """The scorer name of the Keras model of `stage` in export's evaluation ("float" for the
    float model: the reference of agreement)."""
    return "float" if stage == "float" else f"keras:{stage}"


# Layers kept in float at most (the bar the selective-int8 feature was built to: ≤ 3).
SELECTIVE_BUDGET = 3


def _selective(float_model, representative_dataset, dataset, image_size, results,
               max_accuracy_drop, name, conversion, splits=("test", "validation")):
    """int8 with the fewest worst layers in float whose *validation* drop stays within
    max_accuracy_drop (the point rule choices use; debug.selective_int8), as (variant, (bytes with metadata, runner, {split: evaluate
    result}, kept layer rows)), or None when the budget is spent. The caller gates it again
    on the test split."""
    from tftool import data, progress
    from tftool.export import debug
    from tftool.litert import Runner

    def scores_of(content, split):
        return evaluate.evaluate({"m": evaluate.tflite_scorer(Runner(model_content=content))},
                                 data.test_batches(dataset, image_size, split=split),
                                 dataset.class_names)["m"]

    def accept(content):  # a choice: the point rule (choose.ladder says why), not the gate's
        paired = stats.paired_drop(results["validation"]["float"][evaluate.CORRECT],
                                   scores_of(content, "validation")[evaluate.CORRECT])
        return not stats.gate_refuses(paired, max_accuracy_drop, "point")

    try:
        content, kept = debug.selective_int8(
            float_model, representative_dataset, accept, budget=SELECTIVE_BUDGET,
            rgb_input=conversion.get("rgb_input", True),
            output=conversion.get("output_kind", "probabilities"))
    except UserError as e:
        progress.write(f"tftool-export: {stages.SELECTIVE_VARIANT}: {e}")
        return None
    variant = stages.SELECTIVE_VARIANT
    content, _ = with_metadata(content, name, variant, "float", dataset,
                               conversion.get("output_kind", "probabilities"))
    rows = [{k: row[k] for k in ("layers", "op", "tensor", "rmse_scale", "range_ratio")}
            for row in kept]
    scores = {split: scores_of(content, split) for split in splits}
    return variant, (content, Runner(model_content=content), scores, rows)
