"""Benchmark rows and summary entries -> Markdown: benchmark.md's table and report.md.

`markdown_table(rows)` lists every row (all threads, batch sizes, XNNPACK settings);
`summary_markdown` renders the per-variant entries of summary.summarize as report.md: what to
ship (summary.recommend), what the intervals say, which runtime is fastest (`runtime_table`)
and one table line per variant. The plot, report.png, is plot.py's. Any set of variants works:
the float Keras row ("format": "keras") and the TFLite float32 row are the references when
present, and their speed-up columns read "–" when absent.
"""
from tftool.benchmark.cells import accuracy_cell, delta_cell, input_cell
from tftool.benchmark.summary import LATENCY_TIE, eligible, recommend

COLUMNS = (
    ("variant", "variant", "{}"),
    ("format", "format", "{}"),
    ("xnnpack", "XNNPACK", "{}"),
    ("num_threads", "threads", "{}"),
    ("batch_size", "batch", "{}"),
    ("accuracy", "accuracy [95% interval]", "{:.4f}"),
    ("agreement", "agreement", "{:.4f}"),
    ("size_bytes", "size KiB", "{:.1f}"),
    ("gzip_bytes", "gzip KiB", "{:.1f}"),
    ("latency_ms_p50", "p50 ms", "{:.4f}"),
    ("latency_ms_p90", "p90 ms", "{:.4f}"),
    ("latency_ms_p99", "p99 ms", "{:.4f}"),
    ("latency_cv", "CV", "{:.2f}"),
    ("p50_cv", "p50 CV", "{:.3f}"),
    ("throughput_ips", "images/s", "{:,.0f}"),
    ("noisy", "noisy", "{}"),
    ("sparsity", "sparsity", "{:.2f}"),  # zero fraction of the .tflite's kernels (rows.py)
)


def _cell(key, fmt, row):
    value = row.get(key)
    if value is None:
        return "–"
    if key.endswith("_bytes"):
        value = value / 1024
    if key == "xnnpack":
        return "on" if value else "off"
    if key == "noisy":
        return "noisy" if value else ""
    if key == "accuracy" and row.get("accuracy_low") is not None:
        return f"{value:.4f} [{row['accuracy_low']:.4f}, {row['accuracy_high']:.4f}]"
    return fmt.format(value)


def markdown_table(rows):
    """Rows (dicts with rows.ROW_KEYS) -> a GitHub Markdown table, one line per row."""
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if k in ("variant", "format", "xnnpack", "noisy") else "---:"
                          for k, _, _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(k, fmt, row) for k, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value, fmt, suffix=""):
    return "–" if value is None else fmt.format(value) + suffix


def _micro_cell(e):
    m = e.get("micro")
    if not m:
        return "–", "–"
    mark = "" if m.get("fits", True) else " ✗"
    return f"{m['flash_bytes'] / 1024:.1f}{mark}", f"{m['arena_bytes'] / 1024:.1f}{mark}"


# Stages whose variants promise a weight structure the flatbuffer can show: few distinct values
# per kernel (clustering) or the 2:4 pattern.
STRUCTURED_STAGES = ("clustered", "cqat", "pruned_clustered", "pcqat", "pruned_2by4")


def _per_kernel_cell(counts):
    """"16 (72)": the median and the largest distinct-value count over a model's kernels."""
    if not counts:
        return "–"
    ordered = sorted(counts)
    return f"{ordered[(len(ordered) - 1) // 2]} ({ordered[-1]})"


def has_structured(entries):
    """Whether any entry is a variant of a STRUCTURED_STAGES stage (clustering, 2:4): then
    report.md adds the weight-structure columns and suite.py their note."""
    from tftool import stages

    return any(stages.VARIANTS.get(e["variant"], ("",))[0] in STRUCTURED_STAGES
               for e in entries)


def _findings(entries):
    """Plain-language lines: what distillation and each compression did, by the intervals."""
    lines = []
    for e in entries:
        paired = e.get("paired_vs_baseline")
        if paired:
            change = delta_cell(paired).replace(" ≈", "")
            verdict = ("distillation did not help here: the difference is within noise"
                       if paired["within_noise"] else
                       "distillation helped" if paired["drop"] < 0 else
                       "distillation made the student worse")
            lines.append(f"{e['variant']} vs its baseline (the same student trained on the "
                         f"labels alone): {change} points; {verdict}.")
    for e in entries:
        paired = e.get("paired_vs_float")
        if not paired or e["format"] != "tflite" or paired["within_noise"]:
            continue
        change = -paired["drop"] * 100
        lines.append(f"{e['variant']}: {'cost' if change < 0 else 'gained'} "
                     f"{abs(change):.2f} points against the float model "
                     f"({delta_cell(paired)}), beyond noise.")
    return lines


FORMAT_SUFFIX = {"keras": " (Keras)", "onnx": " (ONNX)"}
RUNTIME_NAMES = {"tflite": "LiteRT", "onnx": "ONNX Runtime"}


def runtime_table(rows):
    """Which runtime and variant is fastest on this CPU, per thread count (batch 1, LiteRT
    with XNNPACK): lines of a Markdown section, or [] when no ONNX row was measured.

    Compares the float32 and int8 files of both runtimes (the same float model, the same
    calibration images); says where int8 is slower than float32 in a runtime, as it can be
    for a small model at 1 thread."""
    if not any(r["format"] == "onnx" for r in rows):
        return []
    picked = {}
    for r in rows:
        if (r["batch_size"] == 1 and r["variant"] in ("float32", "int8")
                and r["format"] in RUNTIME_NAMES and r.get("xnnpack") in (True, None)):
            picked[(r["num_threads"], r["format"], r["variant"])] = r["latency_ms_p50"]
    threads = sorted({t for t, _, _ in picked})
    columns = [(fmt, v) for fmt in RUNTIME_NAMES for v in ("float32", "int8")]
    lines = ["## Fastest runtime on this CPU", "",
             "| threads | fastest | " + " | ".join(
                 f"{RUNTIME_NAMES[f]} {v} p50 ms" for f, v in columns) + " |",
             "|---:|---|" + "---:|" * len(columns)]
    slower = []
    for t in threads:
        times = {c: picked.get((t, *c)) for c in columns}
        known = {c: v for c, v in times.items() if v is not None}
        best = min(known, key=known.get) if known else None
        lines.append(f"| {t} | " + (f"{RUNTIME_NAMES[best[0]]} {best[1]}" if best else "–")
                     + " | " + " | ".join(_fmt(times[c], "{:.4f}") for c in columns) + " |")
        for fmt in RUNTIME_NAMES:
            f32, i8 = times.get((fmt, "float32")), times.get((fmt, "int8"))
            if f32 and i8 and i8 > f32:
                slower.append(f"{RUNTIME_NAMES[fmt]} int8 is slower than its float32 at {t} "
                              f"thread(s) ({i8:.4f} vs {f32:.4f} ms)")
    if slower:
        lines += [""] + [f"- {s}: on this model, quantization does not pay here." for s in slower]
    return lines + [""]


def summary_markdown(entries, title, notes=(), num_classes=None, num_test=None, gate=None,
                     runtimes=(), workdir=None, export_dir=None):
    """report.md: what to ship (recommend: one file per target, its reason in words, the rule
    that breaks ties within noise stated above them), what the intervals say (distillation,
    compression), then one table line per variant and the notes (list of str lines).

    Accuracies carry their 95% interval; "Δ vs float" is the paired change in points with its
    95% interval, ≈ marking a change within noise (stats.paired_drop). `gate` is the export's
    "accuracy_gate" card section (rule, max_accuracy_drop), named at the top.
    When a clustering or 2:4 variant is present, three columns give the distinct weight
    values per stored kernel (median over the conv/dense kernels, and the largest: the layers
    clustering skips, e.g. the first conv, keep theirs), the most any output channel of a
    kernel holds, and whether every pruned kernel holds the 2:4 pattern. When any entry
    carries microcontroller figures (entry["micro"]: the model card's "micro" section from
    `tftool-export --micro`), two columns give flash and RAM (tensor arena) in KiB, ✗ marking
    a variant over its budget.
    With `num_classes` and `num_test` (test images), an accuracy near chance
    (chance.near_chance) reads e.g. "0.1150 ≈chance" and a note says what that means.
    `workdir` and `export_dir` (the folders the benchmark read) go into the file paths and
    the commands the recommendations print (None: file names alone, the flag defaults).
    Returns: report.md's text.
    """
    from tftool import chance, stats

    def at_chance(e):
        return bool(num_classes and num_test and e["accuracy"] is not None
                    and chance.near_chance(e["accuracy"], num_classes, num_test))

    if any(at_chance(e) for e in entries):
        notes = list(notes) + [
            f"≈chance: top-1 accuracy within a few points of chance (1/{num_classes}); that "
            f"model guesses. Do not ship it (tftool/chance.py)."]
    lines = [f"# {title}", ""]
    keras = next((e for e in entries if e["format"] == "keras"), None)
    if keras:
        lines.append(f"Reference: the float Keras model, test accuracy {accuracy_cell(keras)}"
                     f"{f' on {num_test} images' if num_test else ''}. Brackets are 95% "
                     f"intervals; ≈ marks a change within noise.")
    if gate:
        points = gate.get("max_accuracy_drop", 0.01) * 100
        lines.append(f"Accuracy gate: `--gate={gate.get('rule', 'paired')} "
                     f"--max_accuracy_drop={gate.get('max_accuracy_drop', 0.01):g}` "
                     f"({points:g} point{'' if points == 1 else 's'}); every file below "
                     f"passed it against its reference at export. The picks below also hold "
                     f"against the float model.")
    lines += ["", "## What to ship", "",
              "How: only files within the accuracy gate against the float model count. Those "
              "whose 95% intervals of the change vs float overlap the most accurate file's are "
              "within noise of it, as good as it on these test images (the split the gate "
              "reads); among them the phone "
              "gets the smallest, then the fastest at 1 thread; the edge CPU the fastest at "
              f"its thread count (p50 within ±{LATENCY_TIE:.0%} is a tie), then the smallest; "
              "the microcontroller the least flash, then the least tensor arena.", ""]
    for pick in recommend(entries, gate, workdir, export_dir):
        setting = f" ({pick['setting']})" if pick["setting"] else ""
        lines.append(f"- **{pick['target']}**{setting}: {pick['text']}")
    outside = [e for e in entries if e["format"] == "tflite"
               and e not in eligible(entries, gate)]
    if outside:
        lines.append("- Outside the gate against float, never picked: " + ", ".join(
            f"{e['variant']} ({delta_cell(e.get('paired_vs_float'))} points)"
            for e in outside) + ".")
    findings = _findings(entries)
    if findings:
        lines += [""] + [f"- {f}" for f in findings]
    if runtimes:
        lines += [""] + list(runtimes)
    micro = any(e.get("micro") for e in entries)
    structured = has_structured(entries)
    header = ("| variant | input | test accuracy | validation | Δ vs float (points) | size KiB "
              "| gzip KiB | sparsity | p50 ms @1 thread | p50 ms @all threads | speed-up vs "
              "TFLite float32 | Pareto |")
    rule = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
    if structured:
        header += " values/kernel median (max) | values/channel max | 2:4 |"
        rule += "---:|---:|:---:|"
    if micro:
        header += " MCU flash KiB | MCU RAM KiB |"
        rule += "---:|---:|"
    lines += ["", "## Every variant", "", header, rule]
    for e in entries:
        name = e["variant"] + FORMAT_SUFFIX.get(e["format"], "")

        def mark(key):
            return "*" if e.get(key) else ""
        delta = (delta_cell(e.get("paired_vs_float")) if e["format"] != "keras"
                 else "–" if e.get("delta_points") is None
                 else stats.format_signed(e["delta_points"]))
        cells = [
            name, input_cell(e),
            accuracy_cell(e) + (" ≈chance" if at_chance(e) else ""),
            _fmt(e.get("validation_accuracy"), "{:.4f}"), delta,
            _fmt(e["size_bytes"] / 1024, "{:.1f}"),
            _fmt(e["gzip_bytes"] / 1024, "{:.1f}"), _fmt(e.get("sparsity"), "{:.2f}"),
            _fmt(e["p50_1"], "{:.4f}", mark("noisy_1")),
            _fmt(e["p50_all"], "{:.4f}", mark("noisy_all")),
            _fmt(e["speedup_float32"], "{:.2f}×"),
            "★" if e["pareto"] else ""]
        if structured:
            m_by_n = e.get("m_by_n")
            cells += [_per_kernel_cell(e.get("unique_per_kernel")),
                      _fmt(e.get("unique_per_channel_max"), "{:d}"),
                      "–" if m_by_n is None else ("✓" if m_by_n else "✗")]
        if micro:
            cells += list(_micro_cell(e))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"{n}  " for n in notes]) + "\n"
