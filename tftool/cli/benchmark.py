"""Measures the float Keras model and every exported .tflite: `tftool-benchmark`.

Example: python -m tftool.benchmark --workdir=workdir --export_dir=exported
For each model: top-1 accuracy on the whole test split, agreement with the float model's
predictions, mean |Δlogit| (int8 outputs dequantized), per-class accuracy, file size raw and
gzipped, and latency for every --threads × --batch_sizes × --xnnpack setting (warm-up, then at
least --min_runs timed runs and --min_seconds; p50/p90/p99, CV; rows whose p50 moved by more
than --max_cv (CV of 10 block medians) while they were timed are flagged noisy). --memory adds the peak RSS of a fresh process that loads and runs the model.

Writes EXPORT_DIR/benchmark.json (a list of rows, bench.ROW_KEYS first), benchmark.md (every
row), report.md (one line per variant, Pareto set marked) and report.png (latency vs
accuracy), adds the figures to each model card (<name>_<variant>.json), and prints report.md.
"""
import datetime
import glob
import os
import platform

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool.cli import common as cli
from tftool.benchmark import measure, report, rows as bench, timing
from tftool import UserError, data as data_lib, io as workdir

from absl import flags

FLAGS = flags.FLAGS
# Cores this process may run on (affinity / cgroup cpusets), not the machine's total.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
flags.DEFINE_string("export_dir", "exported", "Directory of the exported .tflite files.")
flags.DEFINE_string("name", None, "Benchmark <name>_*.tflite (default: <dataset>_<model>).")
flags.DEFINE_list("threads", sorted({1, CORES}),
                  "CPU thread counts to time, for TFLite and TensorFlow (default: 1 and all "
                  "cores).")
flags.DEFINE_list("batch_sizes", ["1", "32"],
                  "Batch sizes to time; batches above 1 are also reported as images/s.")
flags.DEFINE_list("xnnpack", ["on", "off"],
                  "TFLite runtimes: on = default delegates (XNNPACK), off = builtin reference "
                  "kernels (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES).")
flags.DEFINE_integer("min_runs", timing.TIMING_DEFAULTS["min_runs"],
                     "Timed runs per row, at least (benchmark_model --num_runs).")
flags.DEFINE_float("min_seconds", timing.TIMING_DEFAULTS["min_seconds"],
                   "Seconds of timed runs per row, at least (benchmark_model --min_secs).")
flags.DEFINE_integer("warmup_runs", timing.TIMING_DEFAULTS["warmup_runs"],
                     "Untimed runs before timing, at least.")
flags.DEFINE_float("warmup_seconds", timing.TIMING_DEFAULTS["warmup_seconds"],
                   "Seconds of untimed runs before timing, at least.")
flags.DEFINE_float("max_cv", 0.05,
                   "Rows whose p50 CV is above this are flagged noisy: the coefficient of "
                   "variation of the medians of 10 consecutive blocks of timed runs (how much "
                   "the p50 moved during the measurement; see bench.latency_stats).")
flags.DEFINE_boolean("memory", False, "Also measure the peak RSS of a fresh process that "
                     "loads each model and runs it once (one process per model).")


def _positive_ints(values):
    try:
        return all(int(v) >= 1 for v in values) and bool(values)
    except ValueError:
        return False


flags.register_validator("threads", _positive_ints,
                         message="--threads: a comma-separated list of integers ≥ 1, e.g. 1,4")
flags.register_validator("batch_sizes", _positive_ints,
                         message="--batch_sizes: a comma-separated list of integers ≥ 1, e.g. "
                                 "1,32")
flags.register_validator("xnnpack", lambda v: bool(v) and set(v) <= {"on", "off"},
                         message="--xnnpack: on, off or on,off")
flags.register_validator("min_runs", lambda v: v >= 1, message="--min_runs must be ≥ 1")
flags.register_validator("min_seconds", lambda v: v >= 0, message="--min_seconds must be ≥ 0")
flags.register_validator("warmup_runs", lambda v: v >= 0, message="--warmup_runs must be ≥ 0")
flags.register_validator("warmup_seconds", lambda v: v >= 0,
                         message="--warmup_seconds must be ≥ 0")
flags.register_validator("max_cv", lambda v: v > 0, message="--max_cv must be > 0")


def _sorted_ints(values):
    return sorted({int(v) for v in values})


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


def card_benchmark(rows, entry, meta):
    """The "benchmark" section of a model card: the variant's figures from this run."""
    return {
        "accuracy": entry["accuracy"], "agreement": entry["agreement"],
        "delta_points_vs_float": entry["delta_points"],
        "mean_abs_dlogit": entry["mean_abs_dlogit"],
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
                                             "noisy")} for r in rows],
        **meta,
    }


def main(argv):
    del argv
    threads = _sorted_ints(FLAGS.threads)
    batch_sizes = _sorted_ints(FLAGS.batch_sizes)
    xnnpack = [v == "on" for v in dict.fromkeys(FLAGS.xnnpack)]
    timing_settings = {"min_runs": FLAGS.min_runs, "min_seconds": FLAGS.min_seconds,
              "warmup_runs": FLAGS.warmup_runs, "warmup_seconds": FLAGS.warmup_seconds}
    timing.set_tf_threads(max(threads))  # before TensorFlow's first op (accuracy pass only)
    settings = cli.data_settings("benchmark")
    name = FLAGS.name or cli.default_name(FLAGS.workdir)
    paths = sorted(glob.glob(os.path.join(FLAGS.export_dir, f"{glob.escape(name)}_*.tflite")))
    if not paths:
        raise UserError(f"no {name}_*.tflite in {FLAGS.export_dir}: run tftool-export first")
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    images, labels = data_lib.test_arrays(dataset, image_size)
    float_path = workdir.model_path(FLAGS.workdir, "float")
    model = workdir.load_model(float_path)
    float_logits = model.predict(images, batch_size=256, verbose=0)
    load_before = machine()["load_average"]
    rows = bench.keras_rows(float_path, name, float_logits, labels, dataset.class_names,
                            images.shape[1:], threads, batch_sizes, timing_settings)
    for path in paths:
        variant = os.path.basename(path)[len(name) + 1:-len(".tflite")]
        rows += bench.tflite_rows(path, name, variant, images, labels, float_logits,
                                  dataset.class_names, threads, batch_sizes, xnnpack, timing_settings)
        print(f"{path}: measured", flush=True)
    timing.flag_noisy(rows, FLAGS.max_cv)
    if FLAGS.memory:
        peaks = {}
        for r in rows:
            key = (r["format"], r["path"])
            if key not in peaks:
                peaks[key] = measure.in_subprocess(
                    {"task": "memory", "path": r["path"], "fmt": r["format"],
                     "num_threads": max(threads)})
            r.update(peaks[key])
    info = machine()
    info["load_average_before"] = load_before
    meta = {"measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "machine": info, "runtime_versions": bench.versions(),
            "test_examples": int(len(labels))}
    entries = report.summarize(rows)
    title = (f"{name}: {len(labels)} test images; batch 1 unless noted; "
             f"threads {','.join(map(str, threads))}")
    notes = [
        f"Accuracy: top-1 on the whole test split ({len(labels)} images). Δ vs float: "
        f"percentage points vs the Keras float model. Agreement: share of images whose top-1 "
        f"equals the Keras float model's.",
        f"Latency: p50 of ≥ {FLAGS.min_runs} timed runs and ≥ {FLAGS.min_seconds:g} s after "
        f"warm-up, TFLite with XNNPACK (default delegates); 'all threads' = {max(threads)}. "
        f"Speed-ups are p50 ratios at 1 thread, batch 1. images/s: batch "
        f"{max(batch_sizes)}, {max(threads)} threads.",
        f"\\* noisy: that figure's p50 moved while it was measured (CV of the medians of 10 "
        f"consecutive blocks of runs > {FLAGS.max_cv:g}); re-run on a quieter machine. "
        f"★ Pareto-optimal: no other .tflite is at least as accurate, as fast (p50 @1 thread, "
        f"±{report.LATENCY_TIE:.0%} counts as a tie) and as small.",
        f"Machine: {info['cpu']}, {info['cores']} cores, load average (1/5/15 min) "
        f"{load_before} before → {info['load_average']} after; {meta['measured']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["runtime_versions"].items()) + ".",
        "Every row (threads × batch × XNNPACK, p90/p99/CV): benchmark.md, benchmark.json.",
    ]
    summary = report.summary_markdown(entries, title, notes)
    workdir.write_json(os.path.join(FLAGS.export_dir, "benchmark.json"), rows)
    workdir.write_text(os.path.join(FLAGS.export_dir, "benchmark.md"),
                       f"# {title}\n\n{report.markdown_table(rows)}")
    workdir.write_text(os.path.join(FLAGS.export_dir, "report.md"), summary)
    workdir.write_bytes(os.path.join(FLAGS.export_dir, "report.png"),
                        report.plot_png(entries, title))
    for entry in entries:
        card_path = os.path.join(FLAGS.export_dir, f"{name}_{entry['variant']}.json")
        card = workdir.read_json(card_path)
        if entry["format"] != "tflite" or card is None:
            continue
        variant_rows = [r for r in rows
                        if r["variant"] == entry["variant"] and r["format"] == "tflite"]
        card["benchmark"] = card_benchmark(variant_rows, entry, meta)
        workdir.write_json(card_path, card)
    print(report.markdown_table(rows))
    print(summary)


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
