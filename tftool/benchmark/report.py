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
    ("p50_1"; at the fewest measured when 1 was not) and at the largest thread count
    measured ("p50_all"), with those thread counts ("threads_1", "threads_all");
    "throughput_ips" at the largest batch and thread count. Speed-ups are p50_1 ratios
    (reference p50 / this p50) to the Keras float row and the TFLite float32 row.
    "delta_points" is (accuracy − Keras float accuracy) × 100, percentage points. "pareto":
    Pareto-optimal in (accuracy, p50_1, size) among the TFLite variants (pareto_front).
    "noisy": any of the picked rows was flagged noisy; "noisy_1", "noisy_all",
    "noisy_throughput": that figure's row was. "accuracy_interval",
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
            "threads_1": one["num_threads"] if one else None,
            "threads_all": every["num_threads"] if every else None,
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
    interval; ≈ marks a change within noise (the interval holds 0). A part that rounds to
    zero reads "0.00" (stats.format_signed)."""
    from tftool import stats

    if not paired:
        return "–"
    mark = " ≈" if paired["within_noise"] else ""
    return stats.format_change(*_change_points(paired)) + mark


def _change_points(paired):
    """(change, low, high) in percentage points of the other model's accuracy against the
    reference, from a stats.Paired dict (whose drop is reference − other, a fraction)."""
    return -paired["drop"] * 100, -paired["high"] * 100, -paired["low"] * 100


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


# The --workdir and --export_dir defaults (cli/common.py), for reports made without them.
DEFAULT_WORKDIR, DEFAULT_EXPORT_DIR = "workdir", "exported"


def within_noise_of(e, best):
    """Whether entry `e` is as accurate as entry `best` within noise.

    True when their 95% intervals of the change against the float model (paired_vs_float,
    the same test images) overlap; without those, when their accuracy intervals
    ("accuracy_interval", Wilson) overlap; without either, when e's accuracy is at least
    best's. An entry is always within noise of itself.
    Args: e, best: summarize() entries.
    Returns: bool.
    """
    if e is best:
        return True
    pe, pb = e.get("paired_vs_float"), best.get("paired_vs_float")
    if pe and pb:
        (_, low_e, high_e), (_, low_b, high_b) = _change_points(pe), _change_points(pb)
    elif e.get("accuracy_interval") and best.get("accuracy_interval"):
        (low_e, high_e), (low_b, high_b) = e["accuracy_interval"], best["accuracy_interval"]
    else:
        return e["accuracy"] >= best["accuracy"]
    return low_e <= high_b and low_b <= high_e


def micro_commands(workdir=None, export_dir=None):
    """The commands that measure microcontroller flash and tensor arena for this report's
    files (TensorFlow Lite Micro, written to EXPORT_DIR/micro/).

    Args: workdir, export_dir: the folders the report was made from (None: the flag defaults
      "workdir" and "exported").
    Returns: (make command, tftool-export command), shell-quoted.
    """
    import shlex

    work = shlex.quote(workdir or DEFAULT_WORKDIR)
    export = shlex.quote(export_dir or DEFAULT_EXPORT_DIR)
    return (f"make micro WORKDIR={work} EXPORT_DIR={export}",
            f"tftool-export --workdir={work} --export_dir={export} --micro")


def benchmark_command(workdir=None, export_dir=None):
    """`tftool-benchmark --workdir=W --export_dir=E` for this report's folders, shell-quoted
    (None: the flag defaults)."""
    import shlex

    return (f"tftool-benchmark --workdir={shlex.quote(workdir or DEFAULT_WORKDIR)} "
            f"--export_dir={shlex.quote(export_dir or DEFAULT_EXPORT_DIR)}")


def _ms(value):
    """A latency in ms for a sentence: "0.0863", "1.24", "31.2"."""
    return f"{value:.4f}" if value < 1 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _kib(size):
    return f"{size / 1024:.1f} KiB"


def _threads(n):
    return f"{n} thread{'' if n == 1 else 's'}"


def _vs_float(e):
    """"-0.28 [-1.80, +1.10] points vs float", or the test accuracy when no paired figure."""
    from tftool import stats

    paired = e.get("paired_vs_float")
    if paired:
        return f"{stats.format_change(*_change_points(paired))} points vs float"
    return f"test accuracy {_accuracy_cell(e)}"


def _input_note(e):
    """" (input uint8 RGB)", or "" when the input is unknown."""
    known = _input_cell(e)
    return "" if known == "–" else f" (input {known})"


def _ship_path(e, export_dir):
    import os

    name = f"{_stem(e)}.tflite"
    return os.path.join(export_dir, name) if export_dir else name


def _near_reason(e, best, near, what):
    """Why `e` among `near` (the entries within noise of `best`): "within noise of the most
    accurate (...), <what>" with what's "{group}" read as "of those", or, when e is the most
    accurate, says so."""
    if e is best:
        if len(near) == 1:
            return f"the most accurate file ({_vs_float(e)}; no other is within noise of it)"
        group = f"of the {len(near)} within noise of it"
        return f"the most accurate file ({_vs_float(e)}) and {what.format(group=group)}"
    return f"within noise of the most accurate ({_vs_float(e)}), " \
           f"{what.format(group='of those')}"


def recommend(entries, gate=None, workdir=None, export_dir=None):
    """What to ship: one file per target, each with its reason in words.

    Only files within the accuracy gate against float count (`eligible`). The most accurate
    of them (test accuracy; ties: the smaller) anchors the choice: the files within noise of
    it (`within_noise_of`) count as equally accurate, and among those
      Phone            the smallest file, then the fastest p50 (batch 1, 1 thread: "p50_1");
      Edge CPU         the fastest p50 at the most threads measured ("p50_all"), latencies
                       within ±LATENCY_TIE a tie, then the smallest; "not measured" when the
                       benchmark timed one thread count only;
      Microcontroller  among the files whose `micro` figures (tftool-export --micro) fit their
                       budget, the least flash, then the least tensor arena; when nothing was
                       measured, the commands that measure it (micro_commands(workdir,
                       export_dir)).
    A last item names the most accurate file with its interval and the files within noise.

    Args:
      entries: summarize() entries (with "file", "input" and "micro" from the model cards
        when present; a micro section that fits names its C files in "files").
      gate: the cards' "accuracy_gate" section (rule, max_accuracy_drop), or None (paired,
        0.01).
      workdir, export_dir: the folders the report was made from; they appear in the file
        paths and commands (None: file names alone, the flag defaults in commands).
    Returns:
      list of {"target": "Phone" | "Edge CPU" | "Microcontroller" | "Most accurate" | "Any",
      "setting": str (batch and threads, runtime), "entry": the pick or None,
      "text": one sentence, Markdown}. Just one {"target": "Any", "entry": None, ...} when
      no file is within the gate.
    """
    pool = eligible(entries, gate)
    if not pool:
        return [{"target": "Any", "setting": "", "entry": None,
                 "text": "no file is within the accuracy gate against the float model; "
                         "nothing to ship."}]
    best = max(pool, key=lambda e: (e["accuracy"], -e["size_bytes"]))
    near = [e for e in pool if within_noise_of(e, best)]
    inf = float("inf")
    picks = []

    threads_1 = min(e.get("threads_1") or 1 for e in pool)
    phone = min(near, key=lambda e: (e["size_bytes"], e["p50_1"] or inf, -e["accuracy"]))
    what = "the smallest {group}"
    if sum(e["size_bytes"] == phone["size_bytes"] for e in near) > 1:
        what += " and, of the equally small, the fastest"
    latency = (f"p50 {_ms(phone['p50_1'])} ms at {_threads(threads_1)}"
               + (" (noisy)" if phone.get("noisy_1") else "")
               if phone["p50_1"] is not None else "p50 not measured")
    picks.append({
        "target": "Phone", "setting": f"LiteRT / MediaPipe Tasks, batch 1, {_threads(threads_1)}",
        "entry": phone,
        "text": f"ship `{_ship_path(phone, export_dir)}`{_input_note(phone)} — "
                f"{_near_reason(phone, best, near, what)}: {_kib(phone['size_bytes'])}, "
                f"{latency}."})

    multi = [e for e in near if e.get("p50_all") is not None
             and (e.get("threads_all") or 0) > (e.get("threads_1") or 1)]
    if multi:
        threads_all = max(e["threads_all"] for e in multi)
        multi = [e for e in multi if e["threads_all"] == threads_all]
        fastest = min(e["p50_all"] for e in multi)
        fast = [e for e in multi if e["p50_all"] <= fastest * (1 + LATENCY_TIE)]
        edge = min(fast, key=lambda e: (e["size_bytes"], e["p50_all"], -e["accuracy"]))
        what = (f"the fastest {{group}} at {_threads(threads_all)}" if len(fast) == 1 else
                f"the smallest {{group}} whose p50 at {_threads(threads_all)} is within "
                f"±{LATENCY_TIE:.0%} of the fastest")
        picks.append({
            "target": "Edge CPU", "setting": f"LiteRT, batch 1, {_threads(threads_all)}",
            "entry": edge,
            "text": f"ship `{_ship_path(edge, export_dir)}`{_input_note(edge)} — "
                    f"{_near_reason(edge, best, near, what)}: p50 {_ms(edge['p50_all'])} ms"
                    f"{' (noisy)' if edge.get('noisy_all') else ''} at "
                    f"{_threads(threads_all)}, {_kib(edge['size_bytes'])}."})
    else:
        picks.append({
            "target": "Edge CPU", "setting": "LiteRT, batch 1, several threads", "entry": None,
            "text": f"not measured: the benchmark timed {_threads(threads_1)} only; "
                    f"`{benchmark_command(workdir, export_dir)} --threads=1,N` "
                    f"(N: the device's cores) times more."})

    measured = [e for e in pool if e.get("micro")]
    fits = [e for e in measured if e["micro"].get("fits")]
    micro_setting = "TensorFlow Lite Micro, int8 input and output"
    if fits:
        fits_near = [e for e in fits if e in near]
        candidates = fits_near or [max(fits, key=lambda e: (e["accuracy"], -e["size_bytes"]))]
        mcu = min(candidates, key=lambda e: (e["micro"]["flash_bytes"],
                                             e["micro"]["arena_bytes"], e["size_bytes"]))
        reason = (_near_reason(mcu, best, near, "the least flash {group}") if fits_near else
                  f"the most accurate file that fits its budget ({_vs_float(mcu)}); none "
                  f"within noise of the most accurate file fits")
        # the C array export_micro wrote and named in the card (micro/<C name>_model_data.cc)
        source = next(f for f in mcu["micro"]["files"] if f.endswith(".cc"))
        folder = f"{export_dir}/micro" if export_dir else "micro"
        picks.append({
            "target": "Microcontroller", "setting": micro_setting, "entry": mcu,
            "text": f"ship `{folder}/{source}` and its `.h` (the {mcu['variant']} "
                    f"model converted for TFLM with int8 input and output: the `.h` gives the "
                    f"input's scale and zero point and what the output is, not the app "
                    f"file's) — {reason}: flash "
                    f"{_kib(mcu['micro']['flash_bytes'])}, tensor arena "
                    f"{_kib(mcu['micro']['arena_bytes'])}."})
    elif measured:
        least = min(measured, key=lambda e: e["micro"]["flash_bytes"])
        picks.append({
            "target": "Microcontroller", "setting": micro_setting, "entry": None,
            "text": f"none of the {len(measured)} measured integer files fits the "
                    f"--micro_flash_kb/--micro_ram_kb budget (least flash: `{_stem(least)}`, "
                    f"flash {_kib(least['micro']['flash_bytes'])}, tensor arena "
                    f"{_kib(least['micro']['arena_bytes'])})."})
    else:
        make, export = micro_commands(workdir, export_dir)
        picks.append({
            "target": "Microcontroller", "setting": micro_setting, "entry": None,
            "text": f"flash and tensor arena not measured: run `{make}` (or `{export}`), "
                    f"which updates this report: this line then names the file."})

    others = [e["variant"] for e in near if e is not best]
    picks.append({
        "target": "Most accurate", "setting": "test split", "entry": best,
        "text": f"`{_ship_path(best, export_dir)}`, test accuracy {_accuracy_cell(best)}"
                f"{', ' + _vs_float(best) if best.get('paired_vs_float') else ''}; within "
                f"noise of it: "
                f"{', '.join(others) if others else 'no other file'} "
                f"({len(near)} of the {len(pool)} files within the gate)."})
    return picks


def _stem(e):
    """<name>_<variant> of an entry's file."""
    import os

    path = e.get("file") or e.get("path") or e["variant"]
    return os.path.splitext(os.path.basename(path))[0]


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
            f"{e['variant']} ({_delta_cell(e.get('paired_vs_float'))} points)"
            for e in outside) + ".")
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
                 else "–" if e.get("delta_points") is None
                 else stats.format_signed(e["delta_points"]))
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


def plot_limits(entries):
    """The axes limits of report.png: every point and every 95% interval bar inside, with a
    margin (markers are drawn up to ~20 pt wide).

    Args: entries: summarize() entries; those without "p50_1" are not plotted.
    Returns: ((x_low, x_high) in ms, for a log axis; (y_low, y_high) in accuracy percent),
      or None when no entry has a latency.
    """
    points = [e for e in entries if e["p50_1"] is not None]
    if not points:
        return None
    xs = [e["p50_1"] for e in points]
    ys = [e["accuracy"] * 100 for e in points]
    for e in points:
        ys += [v * 100 for v in e.get("accuracy_interval") or ()]
    span = max(ys) - min(ys)
    margin = max(0.15 * span, 0.3)  # points; the bars' caps and the markers stay inside
    return (min(xs) / 1.6, max(xs) * 1.6), (min(ys) - margin, max(ys) + margin)


def _label_points(fig, ax, points):
    """One label per point (variant, size), in a column right of the axes, each joined to its
    point by a thin line. Labels are ordered by their point's height and spaced at least one
    measured text height apart, so none overlaps another (variants often share an accuracy
    and a latency: float16 and float32 on a CPU). Call after the layout is final (the
    positions are figure pixels). Returns the annotations."""
    labels = []
    for e in sorted(points, key=lambda e: (e["accuracy"], -e["p50_1"], e["variant"])):
        text = f"{e['variant']}{FORMAT_SUFFIX.get(e['format'], '')} · {_kib(e['size_bytes'])}"
        labels.append((e, ax.annotate(
            text, (e["p50_1"], e["accuracy"] * 100), xytext=(0, 0), textcoords="figure pixels",
            fontsize=9, va="center", ha="left", annotation_clip=False, zorder=1.5,
            arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5,
                        "shrinkA": 2, "shrinkB": 4})))
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # Text's extent: the label alone (an Annotation's own includes its line)
    step = max(Text.get_window_extent(a, renderer).height for _, a in labels) * 1.25
    box = ax.get_window_extent(renderer)
    x = box.x1 + 12 * fig.dpi / 72
    top = fig.bbox.height - step / 2
    bottom = min(box.y0, top - step * (len(labels) - 1))
    wanted = [min(max(ax.transData.transform((e["p50_1"], e["accuracy"] * 100))[1], bottom),
                  top) for e, _ in labels]
    placed = []
    for y in wanted:  # bottom to top: each at its point's height or one step above the last
        placed.append(y if not placed else max(y, placed[-1] + step))
    for i in range(len(placed) - 1, -1, -1):  # then pushed down from the top where needed
        limit = top if i == len(placed) - 1 else placed[i + 1] - step
        placed[i] = min(placed[i], limit)
    for (_, annotation), y in zip(labels, placed):
        annotation.set_position((x, y))
    return [a for _, a in labels]


def plot_figure(entries, title):
    """The figure of report.png (matplotlib, Agg backend); plot_png renders it.

    p50 latency at 1 thread (x, log scale) vs top-1 test accuracy (y) with its 95% interval
    as a bar; the axes span every point and bar (plot_limits). Marker area proportional to
    the file size; Pareto-optimal TFLite variants filled and joined by a line, the others
    hollow; the Keras float model a grey square (a reference, not a deployable file). Labels
    (variant · size) sit in a column right of the axes, never overlapping (_label_points).
    Args: entries: summarize() entries; title: str.
    Returns: matplotlib.figure.Figure; the caller closes it (matplotlib.pyplot.close).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [e for e in entries if e["p50_1"] is not None]
    height = max(6.0, 0.25 * len(points) + 1.5)  # inches: room for one label per point
    fig, ax = plt.subplots(figsize=(10, height), dpi=120)
    # Fixed margins, not tight_layout: the labels are placed in pixels after the layout.
    fig.subplots_adjust(left=0.08, right=0.64, bottom=0.1, top=0.93)
    if points:
        largest = max(e["size_bytes"] for e in points)
        for e in points:
            area = 600 * e["size_bytes"] / largest  # points², ∝ file size
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
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xscale("log")
        (x_low, x_high), (y_low, y_high) = plot_limits(points)
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(y_low, y_high)
    ax.set_xlabel("p50 latency, batch 1, 1 thread (ms, log scale)")
    ax.set_ylabel("top-1 test accuracy (%), bars: 95% interval")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    fig.text(0.01, 0.01, "marker area ∝ .tflite / .h5 file size", fontsize=8, color="dimgrey")
    if points:
        _label_points(fig, ax, points)
    return fig


def plot_png(entries, title):
    """report.png as bytes (PNG): plot_figure(entries, title) rendered and closed."""
    fig = plot_figure(entries, title)  # selects the Agg backend before pyplot is imported
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
