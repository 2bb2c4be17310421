"""The whole benchmark: measure the float Keras model and every exported .tflite, write the
tables, the report and the plot, and add the figures to each model card.

For each model: top-1 accuracy on the whole test split (streamed, evaluate.py), agreement
with the float model's top-1, mean |Δp| of the class probabilities, per-class accuracy, file
size raw and gzipped, and latency for every threads × batch size × XNNPACK setting
(timing.py: benchmark_model's run loop; p50/p90/p99, CV, noisy flag). Writes
EXPORT_DIR/benchmark.json (a list of rows, rows.ROW_KEYS first), benchmark.md (every row),
report.md (one line per variant, Pareto set marked) and report.png (latency vs accuracy).
"""
import datetime
import glob
import os
import platform

from tftool import UserError, evaluate, fileio, progress, stages
from tftool.benchmark import (measure, plot, report, rows as rows_lib, summary as summary_lib,
                              timing)

# Cores this process may run on (affinity / cgroup cpusets), not the machine's total.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine():
    """Where the figures were taken: CPU, cores, load average (1/5/15 min), OS."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": CORES, "load_average": load, "system": platform.platform()}


def _card_path(export_dir, name, variant, fmt):
    return os.path.join(export_dir, f"{name}_{variant}"
                        + (".onnx.json" if fmt == "onnx" else ".json"))


def card_benchmark(variant_rows, entry, meta, export_dir):
    """The "benchmark" section of a model card: the variant's figures from this run, and the
    sha256 of the file measured, EXPORT_DIR/<the row's file name> (export keeps the section,
    marked stale when the file changes: export/card.py carry_over)."""
    digest = fileio.sha256(os.path.join(export_dir, os.path.basename(entry["path"])))
    return {
        "file_sha256": digest,
        "accuracy": entry["accuracy"], "accuracy_interval": entry.get("accuracy_interval"),
        "validation_accuracy": entry.get("validation_accuracy"),
        "validation_accuracy_interval": entry.get("validation_accuracy_interval"),
        "paired_vs_float": entry.get("paired_vs_float"),
        "paired_vs_baseline": entry.get("paired_vs_baseline"),
        "agreement": entry["agreement"],
        "delta_points_vs_float": entry["delta_points"],
        "mean_abs_dprob": entry["mean_abs_dprob"],
        "latency_ms_p50_1_thread": entry["p50_1"],
        "latency_ms_p50_all_threads": entry["p50_all"],
        "speedup_vs_keras_float": entry["speedup_keras"],
        "speedup_vs_tflite_float32": entry["speedup_float32"],
        "throughput_ips_max_batch": entry["throughput_ips"],
        "pareto_optimal": entry["pareto"], "noisy": entry["noisy"],
        "peak_rss_bytes": entry["peak_rss_bytes"],
        "latency": [{k: r.get(k) for k in ("xnnpack", "num_threads", "batch_size",
                                             "latency_ms_p50", "latency_ms_p90",
                                             "latency_ms_p99", "latency_cv", "throughput_ips",
                                             "noisy")} for r in variant_rows],
        **meta,
    }


def exported_files(export_dir, name):
    """{variant: path} of EXPORT_DIR/<name>_<variant>.tflite, in registry order (variants the
    registry does not name after, by name). Raises UserError when none."""
    paths = glob.glob(os.path.join(export_dir, f"{glob.escape(name)}_*.tflite"))
    if not paths:
        raise UserError(f"no {name}_*.tflite in {export_dir}: run tftool-export first")
    files = {os.path.basename(p)[len(name) + 1:-len(".tflite")]: p for p in paths}
    order = list(stages.VARIANTS) + [stages.SELECTIVE_VARIANT]
    return dict(sorted(files.items(), key=lambda kv: (
        order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def with_comparisons(results, files):
    """Test results of every model with what the report needs beside its accuracy.

    Args:
      results: {"test": evaluate() results, "validation": ...}, keyed (variant, xnnpack),
        the Keras float model as ("float", None).
      files: {variant: path} of the exported files.
    Returns: {"test": {key: JSON-able result + "validation_accuracy" and its interval,
      "paired_vs_float" (stats.Paired.as_dict: the drop vs the Keras float model, image by
      image, with its 95% interval) and, for a student whose baseline was exported,
      "paired_vs_baseline" (the drop vs the baseline student: negative = the student is
      better)}}.
    """
    from tftool import stats

    test, validation = results["test"], results["validation"]
    reference = test[("float", None)][evaluate.CORRECT]
    out = {}
    for key, result in test.items():
        entry = evaluate.json_safe(result)
        entry["validation_accuracy"] = validation[key]["accuracy"]
        entry["validation_accuracy_interval"] = [validation[key]["accuracy_low"],
                                                 validation[key]["accuracy_high"]]
        entry["validation_examples"] = validation[key]["examples"]
        entry["paired_vs_float"] = stats.paired_drop(reference,
                                                     result[evaluate.CORRECT]).as_dict()
        variant, xnnpack = key
        baseline = stages.BASELINES.get(variant)
        if baseline in files and (baseline, xnnpack) in test:
            entry["paired_vs_baseline"] = stats.paired_drop(
                test[(baseline, xnnpack)][evaluate.CORRECT],
                result[evaluate.CORRECT]).as_dict()
        out[key] = entry
    return {"test": out}


def onnx_files(export_dir, name):
    """{variant: path} of EXPORT_DIR/<name>_<variant>.onnx (tftool-export --onnx)."""
    paths = glob.glob(os.path.join(export_dir, f"{glob.escape(name)}_*.onnx"))
    return {os.path.basename(p)[len(name) + 1:-len(".onnx")]: p for p in sorted(paths)}


def measure_all(workdir, export_dir, name, dataset, image_size, threads, batch_sizes, xnnpack,
                timing_settings, max_cv, memory=False):
    """Every benchmark row of the float Keras model and of each exported file.

    Args:
      threads, batch_sizes: sorted lists of ints; xnnpack: list of bools.
      timing_settings: keyword arguments of timing.time_calls.
    Returns: list of row dicts (rows.ROW_KEYS first).
    Raises: UserError: no exports, or a damaged .tflite or model.h5 (named).
    """
    from tftool import data
    from tftool.litert import Runner

    files = exported_files(export_dir, name)
    float_path = stages.model_path(workdir, "float")
    scorers = {("float", None): evaluate.keras_scorer(fileio.load_model(float_path))}
    for variant, path in files.items():
        for use_xnnpack in xnnpack:
            scorers[(variant, use_xnnpack)] = evaluate.tflite_scorer(
                Runner(model_path=path, num_threads=max(threads), use_xnnpack=use_xnnpack))
    onnx = onnx_files(export_dir, name)
    if onnx:  # ONNX Runtime beside LiteRT (tftool-export --onnx)
        from tftool import onnx_runtime

        onnx_runtime.require()
        for variant, path in onnx.items():
            scorers[(variant, "onnx")] = evaluate.tflite_scorer(
                onnx_runtime.Runner(model_path=path, num_threads=max(threads)))
    results = {split: evaluate.evaluate(scorers, data.test_batches(dataset, image_size,
                                                                   split=split),
                                        dataset.class_names, reference=("float", None))
               for split in ("test", "validation")}
    del scorers  # the interpreters of the accuracy pass
    results = with_comparisons(results, files)["test"]
    rows = []
    work = ([("float", None, "keras")] + [(v, p, "tflite") for v, p in files.items()]
            + [(v, p, "onnx") for v, p in onnx.items()])
    for variant, path, fmt in progress.steps(work, "benchmark", unit="model"):
        if path is None:  # the Keras float model, timed in fresh processes
            rows += rows_lib.keras_rows(float_path, name, results[("float", None)],
                                        tuple(image_size) + (dataset.image_shape[-1],),
                                        threads, batch_sizes, timing_settings)
            continue
        if fmt == "onnx":
            rows += rows_lib.onnx_rows(path, name, variant, results[(variant, "onnx")],
                                       threads, batch_sizes, timing_settings)
            continue
        accuracy = {x: results[(variant, x)] for x in xnnpack}
        rows += rows_lib.tflite_rows(path, name, variant, accuracy, threads, batch_sizes,
                                     xnnpack, timing_settings)
    timing.flag_noisy(rows, max_cv)
    if memory:
        peaks = {}
        for r in rows:
            if r["format"] == "onnx":  # measure.py times LiteRT and Keras processes only
                continue
            key = (r["format"], r["path"])
            if key not in peaks:
                peaks[key] = measure.in_subprocess(
                    {"task": "memory", "path": r["path"], "fmt": r["format"],
                     "num_threads": max(threads)})
            r.update(peaks[key])
    return rows


# What write_outputs was given besides the rows (benchmark.json), so refresh_report can write
# report.md again when the cards gain figures (tftool-export --micro) without timing again.
SETTINGS_FILE = "benchmark_settings.json"


def write_outputs(export_dir, name, rows, threads, batch_sizes, timing_settings, max_cv,
                  load_before, examples, num_classes=None, workdir=None, meta=None):
    """Writes benchmark.json/.md, report.md/.png, SETTINGS_FILE and the model cards'
    "benchmark" sections.

    num_classes: when given, report.md marks accuracies near chance ("≈chance").
    workdir: the stage folders the exports came from; report.md's commands name it (and
      export_dir), e.g. `make micro WORKDIR=... EXPORT_DIR=...`.
    meta: the run's "measured" time, machine and versions (None: now, this machine).

    Returns: report.md's text.
    """
    if meta is None:
        info = machine()
        info["load_average_before"] = load_before
        meta = {"measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "machine": info, "runtime_versions": rows_lib.versions(),
                "test_examples": examples}
    info = meta["machine"]
    entries = summary_lib.summarize(rows)
    title = f"{name}: which file to ship"
    notes = [
        f"Accuracy: top-1 on the whole test split ({examples} images), each model fed what an "
        f"app feeds it (uint8 pixels), with its 95% Wilson interval; validation: the same on "
        f"the validation split, which chose what was chosen. Δ vs float: the change in "
        f"percentage points against the Keras float model, compared image by image, with its "
        f"95% interval (Newcombe's paired interval; ≈: the interval holds 0, within noise).",
        f"Latency: p50 of ≥ {timing_settings['min_runs']} timed runs and ≥ "
        f"{timing_settings['min_seconds']:g} s after warm-up, TFLite with XNNPACK (default "
        f"delegates); 'all threads' = {max(threads)}. Speed-ups are p50 ratios at 1 thread, "
        f"batch 1. images/s: batch {max(batch_sizes)}, {max(threads)} threads.",
        f"\\* noisy: that figure's p50 moved while it was measured (CV of the medians of 10 "
        f"consecutive blocks of runs > {max_cv:g}); re-run on a quieter machine. "
        f"★ Pareto-optimal: no other .tflite is at least as accurate, as fast (p50 @1 thread, "
        f"±{summary_lib.LATENCY_TIE:.0%} counts as a tie) and as small.",
        f"Machine: {info['cpu']}, {info['cores']} cores, load average (1/5/15 min) "
        f"{load_before} before → {info['load_average']} after; {meta['measured']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["runtime_versions"].items()) + ".",
        "Every row (threads × batch × XNNPACK, p90/p99/CV): benchmark.md, benchmark.json.",
    ]
    # Every model card is read before anything is written: a damaged one stops the run with
    # one line and leaves the previous benchmark files as they were.
    cards = {}
    for entry in entries:
        if entry["format"] in ("tflite", "onnx"):
            path = _card_path(export_dir, name, entry["variant"], entry["format"])
            key = (entry["variant"], entry["format"])
            cards[key] = (path, fileio.read_json_object(path, fix="run tftool-export again"))
            card = cards[key][1] or {}
            entry["micro"] = None if (card.get("micro") or {}).get("stale") else card.get("micro")
            entry["file"] = card.get("file")
            if card.get("input"):
                color = card["input"].get("color") or (
                    "RGB" if card["input"]["shape"][-1] == 3 else "grayscale")
                entry["input"] = f"{card['input']['dtype']} {color}"
    card_of = {v: c for (v, fmt), (_, c) in cards.items() if c and fmt == "tflite"}
    gate = next((c["accuracy_gate"] for c in card_of.values()
                 if c.get("accuracy_gate", {}).get("reference") == "the float Keras model"),
                None)
    worst = (card_of.get("int8") or {}).get("quantization_debugger_worst")
    if worst:
        notes.insert(2, "int8 quantization error by layer (QuantizationDebugger, worst first; "
                        "RMSE in quantization steps): " + "; ".join(
                            f"{'/'.join(r['layers']) or r['op']} {r['rmse_scale']:.2f}"
                            for r in worst[:3]) + ".")
    kept = (card_of.get("int8_selective") or {}).get("layers_kept_float")
    if kept:
        notes.insert(2, "int8_selective: int8 missed the accuracy gate; these layers were kept "
                        "in float to pass it: " + ", ".join(
                            "/".join(r["layers"]) or r["op"] for r in kept) + ".")
    if report.has_structured(entries):
        notes.insert(2, "values/channel max: the most distinct weight values any output "
                        "channel of a stored kernel holds (≤ the number of clusters for "
                        "clustered variants; int8 is per channel). 2:4: every kernel the "
                        "pattern can apply to has 2 zeros in each 4 input-channel weights.")
    skipped = stages.skipped_summary(workdir) if workdir else None
    if skipped:
        notes.insert(2, f"Not in the table: the stages make skipped because tfmot cannot take "
                        f"the model (their QAT, pruning or clustering variants): {skipped}.")
    if any(e.get("micro") for e in entries):
        notes.insert(2, "Microcontroller (`tftool-export --micro`, TensorFlow Lite Micro): "
                        "flash = the model array, RAM = the measured tensor arena + margin "
                        "(the TFLM runtime's own code and the app's buffers not counted); "
                        "✗ = over the --micro_flash_kb/--micro_ram_kb budget given to export.")
    summary = report.summary_markdown(entries, title, notes, num_classes=num_classes,
                                      num_test=examples, gate=gate,
                                      runtimes=report.runtime_table(rows),
                                      workdir=workdir, export_dir=export_dir)
    fileio.write_json(os.path.join(export_dir, "benchmark.json"), rows)
    fileio.write_json(os.path.join(export_dir, SETTINGS_FILE), {
        "threads": threads, "batch_sizes": batch_sizes, "timing_settings": timing_settings,
        "max_cv": max_cv, "load_before": load_before, "examples": examples,
        "num_classes": num_classes, "workdir": workdir, "meta": meta})
    fileio.write_text(os.path.join(export_dir, "benchmark.md"),
                      f"# {name}: every benchmark row ({examples} test images)\n\n"
                      f"{report.markdown_table(rows)}")
    fileio.write_text(os.path.join(export_dir, "report.md"), summary)
    fileio.write_bytes(os.path.join(export_dir, "report.png"), plot.plot_png(
        entries, f"{name}: {examples} test images, batch 1"))
    for entry in entries:
        path, card = cards.get((entry["variant"], entry["format"]), (None, None))
        if card is None:
            continue
        variant_rows = [r for r in rows
                        if r["variant"] == entry["variant"] and r["format"] == entry["format"]]
        card["benchmark"] = card_benchmark(variant_rows, entry, meta, export_dir)
        fileio.write_json(path, card)
    return summary


def refresh_report(export_dir, name):
    """Writes report.md/.png (and the cards' "benchmark" sections) again from the last
    benchmark's rows (benchmark.json, SETTINGS_FILE) and the model cards as they are now, without
    timing anything: after `tftool-export --micro` adds flash and arena figures to the cards,
    the report's microcontroller line names its file.

    Returns:
      (report.md's text, None), or (None, why not in one line) when there is no benchmark to
      refresh, it came from a tftool without SETTINGS_FILE, it measured files that have
      since changed or gone (every exported file it measured must still have the sha256 its
      card's benchmark section recorded), or a file was exported after it (the report would
      leave it out): then only a new tftool-benchmark run can say.
    Raises:
      UserError: a damaged benchmark.json, SETTINGS_FILE or card.
    """
    fix = "run tftool-benchmark again"
    rows = fileio.read_json(os.path.join(export_dir, "benchmark.json"), fix=fix)
    if not rows:
        return None, f"no benchmark in {export_dir} yet"
    settings = fileio.read_json_object(os.path.join(export_dir, SETTINGS_FILE), fix=fix)
    if not settings:
        return None, "its benchmark was written by an older tftool"
    measured_files = {(r["variant"], r["format"], os.path.basename(r["path"])) for r in rows
                      if r["format"] in ("tflite", "onnx")}
    for variant, fmt, base in sorted(measured_files):
        file = os.path.join(export_dir, base)
        card = fileio.read_json_object(_card_path(export_dir, name, variant, fmt), fix=fix) or {}
        measured = card.get("benchmark") or {}
        if (not os.path.exists(file) or measured.get("stale")
                or measured.get("file_sha256") != fileio.sha256(file)):
            return None, f"its benchmark measured an earlier {os.path.basename(file)}"
    exported = {*exported_files(export_dir, name).values(), *onnx_files(export_dir, name).values()}
    unmeasured = sorted(os.path.basename(p) for p in exported
                        if os.path.basename(p) not in {base for _, _, base in measured_files})
    if unmeasured:
        return None, f"{unmeasured[0]} was exported after its benchmark"
    return write_outputs(export_dir, name, rows, settings["threads"], settings["batch_sizes"],
                         settings["timing_settings"], settings["max_cv"],
                         settings["load_before"], settings["examples"],
                         num_classes=settings["num_classes"], workdir=settings["workdir"],
                         meta=settings["meta"]), None


def refresh_report_line(workdir, export_dir, name):
    """refresh_report after `tftool-export --micro`, as the one line export prints: that
    report.md was updated, or which command updates it; None when no benchmark wrote one."""
    path = os.path.join(export_dir, "report.md")
    if not os.path.exists(path):
        return None
    _, why_not = refresh_report(export_dir, name)
    if why_not is None:
        return f"{path}: updated with the microcontroller figures"
    command = summary_lib.benchmark_command(workdir, export_dir)
    return f"{path}: not updated ({why_not}): run `{command}` to update it"
