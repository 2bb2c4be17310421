"""Benchmark rows -> Markdown tables, a per-variant summary with the Pareto set, and a PNG plot.

`markdown_table(rows)` lists every row (all threads, batch sizes, XNNPACK settings);
`summarize(rows)` reduces them to one entry per variant, `summary_markdown` renders that as
report.md and `plot_png` draws latency vs accuracy (report.png). Any set of variants works:
the float Keras row ("format": "keras") and the TFLite float32 row are the references when
present, and their speed-up columns read "–" when absent.
"""
import io

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
    ("sparsity", "sparsity", "{:.2f}"),  # zero fraction of the .tflite's kernels (bench.py)
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
    """Rows (dicts with bench.ROW_KEYS) -> a GitHub Markdown table, one line per row."""
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if k in ("variant", "format", "xnnpack", "noisy") else "---:"
                          for k, _, _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(k, fmt, row) for k, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


# ---- per-variant summary ---------------------------------------------------------------------
def _pick(rows, variant, fmt, num_threads, batch_size):
    """The row of (variant, format) at num_threads/batch_size with the default runtime
    (XNNPACK on for TFLite), or None."""
    for r in rows:
        if (r["variant"] == variant and r["format"] == fmt and r["num_threads"] == num_threads
                and r["batch_size"] == batch_size and r.get("xnnpack") in (True, None)):
            return r
    return None


LATENCY_TIE = 0.05


def pareto_front(points, latency_tie=LATENCY_TIE):
    """Indices of the Pareto-optimal points.

    Args: points: list of (accuracy, latency_ms, size_bytes); higher accuracy, lower latency
      and lower size are better. A point is dominated when another is at least as good on all
      three and strictly better on one. Latencies within a factor 1 ± latency_tie of each
      other count as equal (differences that small are within run-to-run noise). Points with
      a None coordinate are never optimal.
    """
    def dominates(a, b):
        faster = a[1] < b[1] * (1 - latency_tie)
        as_fast = a[1] <= b[1] * (1 + latency_tie)
        at_least = a[0] >= b[0] and as_fast and a[2] <= b[2]
        return at_least and (a[0] > b[0] or faster or a[2] < b[2])

    valid = [i for i, p in enumerate(points) if None not in p]
    return [i for i in valid if not any(dominates(points[j], points[i]) for j in valid if j != i)]


def _interval(row):
    """[low, high] of a row's accuracy (evaluate's 95% Wilson interval), or None."""
    if row.get("accuracy_low") is None:
        return None
    return [row["accuracy_low"], row["accuracy_high"]]


def summarize(rows):
    """One entry per (variant, format), in the order rows first name them.

    Latency figures are batch 1 with the default runtime (XNNPACK on): p50 at 1 thread
    ("p50_1") and at the largest thread count measured ("p50_all"); "throughput_ips" at the
    largest batch and thread count. Speed-ups are p50_1 ratios (reference p50 / this p50) to the
    Keras float row and the TFLite float32 row. "delta_points" is (accuracy − Keras float
    accuracy) × 100, percentage points. "pareto": Pareto-optimal in (accuracy, p50_1, size)
    among the TFLite variants (pareto_front). "noisy": any of the picked rows was flagged noisy;
    "noisy_1", "noisy_all", "noisy_throughput": that figure's row was. "accuracy_interval",
    "validation_accuracy(_interval)", "paired_vs_float" and "paired_vs_baseline"
    (stats.Paired.as_dict) come from the rows when the benchmark measured them.
    """
    max_threads = max(r["num_threads"] for r in rows)
    max_batch = max(r["batch_size"] for r in rows)
    keys = []
    for r in rows:
        if (r["variant"], r["format"]) not in keys:
            keys.append((r["variant"], r["format"]))
    entries = []
    for variant, fmt in keys:
        one = _pick(rows, variant, fmt, 1, 1) or _pick(rows, variant, fmt, min(
            r["num_threads"] for r in rows), 1)
        every = _pick(rows, variant, fmt, max_threads, 1)
        big = _pick(rows, variant, fmt, max_threads, max_batch) if max_batch > 1 else None
        base = one or every or next(r for r in rows if (r["variant"], r["format"]) == (variant,
                                                                                       fmt))
        picked = [r for r in (one, every, big) if r]
        entries.append({
            "variant": variant, "format": fmt, "accuracy": base["accuracy"],
            "accuracy_interval": _interval(base), "examples": base.get("examples"),
            "validation_accuracy": base.get("validation_accuracy"),
            "validation_accuracy_interval": base.get("validation_accuracy_interval"),
            "paired_vs_float": base.get("paired_vs_float"),
            "paired_vs_baseline": base.get("paired_vs_baseline"),
            "input_dtype": base.get("input_dtype"), "path": base.get("path"),
            "agreement": base["agreement"], "mean_abs_dprob": base.get("mean_abs_dprob"),
            "size_bytes": base["size_bytes"], "gzip_bytes": base["gzip_bytes"],
            "p50_1": one["latency_ms_p50"] if one else None,
            "p50_all": every["latency_ms_p50"] if every else None,
            "throughput_ips": big.get("throughput_ips") if big else None,
            "noisy": any(r.get("noisy") for r in picked),
            "noisy_1": bool(one and one.get("noisy")),
            "noisy_all": bool(every and every.get("noisy")),
            "noisy_throughput": bool(big and big.get("noisy")),
            "peak_rss_bytes": base.get("peak_rss_bytes"),
            "sparsity": base.get("sparsity"),
            "unique_per_channel_max": base.get("unique_per_channel_max"),
            "unique_per_kernel": [k["unique"] for k in base.get("kernel_patterns") or []],
            "m_by_n": base.get("m_by_n"),
        })
    keras = next((e for e in entries if e["format"] == "keras"), None)
    tfl32 = next((e for e in entries if e["format"] == "tflite" and e["variant"] == "float32"),
                 None)
    for e in entries:
        e["delta_points"] = ((e["accuracy"] - keras["accuracy"]) * 100 if keras else None)
        for key, ref in (("speedup_keras", keras), ("speedup_float32", tfl32)):
            ok = ref and ref["p50_1"] and e["p50_1"]
            e[key] = ref["p50_1"] / e["p50_1"] if ok else None
        e["pareto"] = False
    tflite = [e for e in entries if e["format"] == "tflite"]
    for i in pareto_front([(e["accuracy"], e["p50_1"], e["size_bytes"]) for e in tflite]):
        tflite[i]["pareto"] = True
    return entries


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


def _structured(entries):
    from tftool import stages

    return any(stages.VARIANTS.get(e["variant"], ("",))[0] in STRUCTURED_STAGES
               for e in entries)


def _accuracy_cell(e, key="accuracy"):
    """"0.9861 [0.9678, 0.9940]": an accuracy with its 95% interval ("–" when unknown)."""
    value, interval = e.get(key), e.get(f"{key}_interval")
    if value is None:
        return "–"
    if not interval:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def _delta_cell(paired):
    """"−1.11 [−2.81, +0.11] ≈" from a stats.Paired dict: the change in points with its 95%
    interval; ≈ marks a change within noise (the interval holds 0)."""
    if not paired:
        return "–"
    change, low, high = (-paired["drop"] * 100 + 0.0, -paired["high"] * 100 + 0.0,
                         -paired["low"] * 100 + 0.0)
    mark = " ≈" if paired["within_noise"] else ""
    return f"{change:+.2f} [{low:+.2f}, {high:+.2f}]{mark}"


def eligible(entries, gate=None):
    """The deployable entries (TFLite) within the accuracy gate *against the float model*:
    stats.gate_refuses with the export's rule and tolerance (gate = the cards'
    "accuracy_gate" section; default paired, 0.01) does not refuse their paired_vs_float.
    A student passes its own gate at export; here it must also hold against float."""
    from tftool import stats

    rule = (gate or {}).get("rule", "paired")
    max_drop = (gate or {}).get("max_accuracy_drop", 0.01)
    chosen = []
    for e in entries:
        if e["format"] != "tflite":
            continue
        paired = e.get("paired_vs_float")
        if paired is None or not stats.gate_refuses(_as_paired(paired), max_drop, rule):
            chosen.append(e)
    return chosen


def _as_paired(d):
    from tftool import stats

    return stats.Paired(**{k: d[k] for k in ("n", "both", "only_reference", "only_other",
                                             "neither", "drop", "low", "high")})


def recommend(entries, gate=None):
    """What to ship, one pick per target, among the variants within the gate (`eligible`).

    Returns: list of (target, entry or None, how: a line naming the file or command to use).
      smallest  least file size; ties: faster p50 @1 thread, then more accurate;
      fastest   least p50 @1 thread, latencies within LATENCY_TIE counting as equal; ties:
                smaller file, then more accurate;
      microcontroller  least flash among variants whose `micro` figures (tftool-export
                --micro) fit their budget; ties: smaller arena. None when not measured;
      most accurate on validation  highest validation accuracy (the choice reads validation,
                the table reports test); ties: smaller file.
    """
    pool = eligible(entries, gate)
    picks = []
    if not pool:
        return [("any", None, "no variant is within the accuracy gate against float")]
    smallest = min(pool, key=lambda e: (e["size_bytes"], e["p50_1"] or float("inf"),
                                        -e["accuracy"]))
    fastest_p50 = min(e["p50_1"] for e in pool if e["p50_1"] is not None) \
        if any(e["p50_1"] is not None for e in pool) else None
    fast = [e for e in pool if fastest_p50 is not None and e["p50_1"] is not None
            and e["p50_1"] <= fastest_p50 * (1 + LATENCY_TIE)]
    fastest = min(fast, key=lambda e: (e["size_bytes"], -e["accuracy"])) if fast else None
    picks.append(("phone / edge (MediaPipe Tasks, LiteRT): smallest", smallest,
                  _file_of(smallest)))
    picks.append(("phone / edge: fastest at 1 thread", fastest, _file_of(fastest)))
    fits = [e for e in pool if (e.get("micro") or {}).get("fits")]
    if fits:
        mcu = min(fits, key=lambda e: (e["micro"]["flash_bytes"], e["micro"]["arena_bytes"]))
        picks.append(("microcontroller (TFLite Micro): least flash", mcu,
                      f"micro/{_stem(mcu)}_model_data.cc (flash "
                      f"{mcu['micro']['flash_bytes'] / 1024:.1f} KiB, tensor arena "
                      f"{mcu['micro']['arena_bytes'] / 1024:.1f} KiB)"))
    else:
        picks.append(("microcontroller (TFLite Micro)", None,
                      "not measured: run `make micro` (tftool-export --micro) for flash and "
                      "tensor arena"))
    # chosen on the validation split, like every choice; the table shows its test accuracy
    best = max(pool, key=lambda e: (e.get("validation_accuracy") or e["accuracy"],
                                    -e["size_bytes"]))
    picks.append(("most accurate on validation", best, _file_of(best)))
    return picks


def _stem(e):
    """<name>_<variant> of an entry's file."""
    import os

    path = e.get("file") or e.get("path") or e["variant"]
    return os.path.splitext(os.path.basename(path))[0]


def _file_of(e):
    return "–" if e is None else f"`{_stem(e)}.tflite`"


def _input_cell(e):
    return e.get("input") or e.get("input_dtype") or "–"


def _findings(entries):
    """Plain-language lines: what distillation and each compression did, by the intervals."""
    lines = []
    for e in entries:
        paired = e.get("paired_vs_baseline")
        if paired:
            change = _delta_cell(paired).replace(" ≈", "")
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
                     f"({_delta_cell(paired)}), beyond noise.")
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
                     runtimes=()):
    """report.md: what to ship (recommend), what the intervals say (distillation, compression),
    then one table line per variant and the notes (list of str lines).

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
    """
    from tftool import chance

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
        lines.append(f"Reference: the float Keras model, test accuracy {_accuracy_cell(keras)}"
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
              "| target | file | test accuracy | vs float (points) | size KiB | p50 ms @1 "
              "thread | input |",
              "|---|---|---:|---:|---:|---:|---|"]
    for target, e, how in recommend(entries, gate):
        if e is None:
            lines.append(f"| {target} | {how} | – | – | – | – | – |")
            continue
        lines.append(f"| {target} | {e['variant']}: {how} | {_accuracy_cell(e)} | "
                     f"{_delta_cell(e.get('paired_vs_float'))} | {e['size_bytes'] / 1024:.1f} | "
                     f"{_fmt(e['p50_1'], '{:.4f}')} | {_input_cell(e)} |")
    findings = _findings(entries)
    if findings:
        lines += [""] + [f"- {f}" for f in findings]
    if runtimes:
        lines += [""] + list(runtimes)
    micro = any(e.get("micro") for e in entries)
    structured = _structured(entries)
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
        delta = (_delta_cell(e.get("paired_vs_float")) if e["format"] != "keras"
                 else _fmt(e.get("delta_points"), "{:+.2f}"))
        cells = [
            name, _input_cell(e),
            _accuracy_cell(e) + (" ≈chance" if at_chance(e) else ""),
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


def _label_points(fig, ax, points, areas):
    """One label per point (variant, size), moved down until it overlaps no earlier label:
    variants often share an accuracy and a latency (float16 and float32 on a CPU)."""
    fig.canvas.draw()
    placed = []  # label boxes in display pixels: (x0, y0, x1, y1)
    line_px = 11 * fig.dpi / 72  # one 9-pt text line plus spacing, in pixels
    order = sorted(points, key=lambda e: (-e["accuracy"], e["p50_1"]))
    for e in order:
        x, y = ax.transData.transform((e["p50_1"], e["accuracy"] * 100))
        label = e["variant"] + FORMAT_SUFFIX.get(e["format"], "")
        label += f" · {e['size_bytes'] / 1024:.0f} KiB"
        width = 6.2 * len(label) * fig.dpi / 100
        radius_pt = areas[id(e)] ** 0.5 / 2  # scatter's s is the marker area in points²
        dx, dy = (radius_pt + 4) * fig.dpi / 72, 4 * fig.dpi / 72
        box = (x + dx, y + dy, x + dx + width, y + dy + line_px)
        while any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                  for b in placed):
            dy -= line_px
            box = (x + dx, y + dy, x + dx + width, y + dy + line_px)
        placed.append(box)
        ax.annotate(label, (e["p50_1"], e["accuracy"] * 100), fontsize=9, zorder=4,
                    xytext=(dx * 72 / fig.dpi, dy * 72 / fig.dpi), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.6}
                    if dy < 0 else None)


def plot_png(entries, title):
    """report.png as bytes: p50 latency at 1 thread (x, log scale) vs top-1 accuracy (y).

    One labelled point per variant; marker area proportional to the file size; Pareto-optimal
    TFLite variants filled and joined by a line, the others hollow; the Keras float model a
    grey square (a reference, not a deployable file). Uses matplotlib's Agg backend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [e for e in entries if e["p50_1"] is not None]
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    if points:
        largest = max(e["size_bytes"] for e in points)
        areas = {}
        for e in points:
            area = 1400 * e["size_bytes"] / largest  # points², ∝ file size
            areas[id(e)] = area
            y = e["accuracy"] * 100
            interval = e.get("accuracy_interval")
            if interval:  # the 95% interval of the accuracy as a vertical bar
                ax.errorbar(e["p50_1"], y, yerr=[[y - interval[0] * 100],
                                                  [interval[1] * 100 - y]],
                            fmt="none", ecolor="grey", elinewidth=0.8, capsize=2, zorder=1)
            if e["format"] == "keras":
                ax.scatter(e["p50_1"], y, s=area, marker="s", facecolor="lightgrey",
                           edgecolor="dimgrey", linewidth=1.5, zorder=2)
            else:
                ax.scatter(e["p50_1"], y, s=area, alpha=0.75, linewidth=1.5, zorder=3,
                           facecolor="tab:blue" if e["pareto"] else "white",
                           edgecolor="tab:blue")
        front = sorted((e for e in points if e["pareto"]), key=lambda e: e["p50_1"])
        if len(front) > 1:
            ax.plot([e["p50_1"] for e in front], [e["accuracy"] * 100 for e in front],
                    color="tab:blue", linestyle="--", linewidth=1, zorder=1,
                    label="Pareto front (filled: Pareto-optimal)")
            ax.legend(loc="lower right", fontsize=9)
        ax.set_xscale("log")
        xs = [e["p50_1"] for e in points]
        ax.set_xlim(min(xs) / 1.6, max(xs) * 3.0)  # room for the labels on the right
        ys = [e["accuracy"] * 100 for e in points]
        pad = max(0.5, (max(ys) - min(ys)) * 0.25)
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
        _label_points(fig, ax, points, areas)
    ax.set_xlabel("p50 latency, batch 1, 1 thread (ms, log scale)")
    ax.set_ylabel("top-1 test accuracy (%), bars: 95% interval")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    fig.text(0.01, 0.01, "marker area ∝ .tflite / .h5 file size", fontsize=8, color="dimgrey")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
