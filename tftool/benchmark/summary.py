"""What to ship, chosen from benchmark rows: one entry per variant, the Pareto set, one file per
target with its reason in words (report.py writes them into report.md, plot.py into report.png).

`summarize(rows)` reduces the rows to one entry per variant, the Pareto set marked
(`pareto_front`; p50s within ±LATENCY_TIE tie); `eligible` keeps the files within the accuracy
gate against float, `within_noise_of` compares accuracies by their 95% intervals, `recommend`
picks the file for a phone, an edge CPU and a microcontroller. The float Keras row and the
TFLite float32 row are the references when present; speed-ups against an absent one are None.
"""
from tftool.benchmark.cells import accuracy_cell, change_points, input_cell, kib


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


# The --workdir and --export_dir defaults (cli/flags.py), for reports made without them.
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
        (_, low_e, high_e), (_, low_b, high_b) = change_points(pe), change_points(pb)
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


def _threads(n):
    return f"{n} thread{'' if n == 1 else 's'}"


def _vs_float(e):
    """"-0.28 [-1.80, +1.10] points vs float", or the test accuracy when no paired figure."""
    from tftool import stats

    paired = e.get("paired_vs_float")
    if paired:
        return f"{stats.format_change(*change_points(paired))} points vs float"
    return f"test accuracy {accuracy_cell(e)}"


def _input_note(e):
    """" (input uint8 RGB)", or "" when the input is unknown."""
    known = input_cell(e)
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
                f"{_near_reason(phone, best, near, what)}: {kib(phone['size_bytes'])}, "
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
                    f"{_threads(threads_all)}, {kib(edge['size_bytes'])}."})
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
                    f"{kib(mcu['micro']['flash_bytes'])}, tensor arena "
                    f"{kib(mcu['micro']['arena_bytes'])}."})
    elif measured:
        least = min(measured, key=lambda e: e["micro"]["flash_bytes"])
        picks.append({
            "target": "Microcontroller", "setting": micro_setting, "entry": None,
            "text": f"none of the {len(measured)} measured integer files fits the "
                    f"--micro_flash_kb/--micro_ram_kb budget (least flash: `{_stem(least)}`, "
                    f"flash {kib(least['micro']['flash_bytes'])}, tensor arena "
                    f"{kib(least['micro']['arena_bytes'])})."})
    else:
        make, export = micro_commands(workdir, export_dir)
        picks.append({
            "target": "Microcontroller", "setting": micro_setting, "entry": None,
            "text": f"flash and tensor arena not measured: run `{make}` (or `{export}`), "
                    f"which updates this report: this line then names the file."})

    others = [e["variant"] for e in near if e is not best]
    picks.append({
        "target": "Most accurate", "setting": "test split", "entry": best,
        "text": f"`{_ship_path(best, export_dir)}`, test accuracy {accuracy_cell(best)}"
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
