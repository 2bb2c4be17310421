"""What a search leaves the user: search.md (every trial), pareto.png (accuracy vs latency,
marker area ∝ size, the front and the budget lines) and best.flags (the chosen model as a
tftool-train flagfile for `make all`)."""
import io

from tftool import stats


def _accuracy(row):
    value, interval = row["validation_accuracy"], row["validation_accuracy_interval"]
    if value is None:
        return "–"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else f"{value:.4f}"


def _kib(value):
    return "–" if value is None else f"{value / 1024:.1f}"


def markdown(summary, budgets, settings, test=None, hypervolume=None):
    """search.md: the budgets, the chosen trial (validation and test accuracy), then every
    trial: parameters, validation accuracy with its 95% interval, latency, size, flash, arena,
    feasible or not, on the front or not, rejected before training or not.

    Args:
      summary: study.Summary; budgets: hardware.Budgets; settings: {name: value} to list.
      test: the chosen file's test figures {"accuracy", "low", "high", "n"} or None.
      hypervolume: the front's 2-D hypervolume (study.hypervolume_2d) or None.
    """
    limits = {"p50 latency (ms)": budgets.latency_ms, "file size (KiB)": budgets.size_kb,
              "TFLM flash (KiB)": budgets.flash_kb, "TFLM tensor arena (KiB)": budgets.arena_kb,
              "validation accuracy ≥": budgets.min_accuracy}
    given = [f"{k} {v:g}" for k, v in limits.items() if v is not None]
    lines = ["# tftool-search", "",
             f"Budgets: {', '.join(given) if given else 'none'}. "
             + ", ".join(f"{k}: {v}" for k, v in settings.items()) + ".", ""]
    chosen = summary.chosen
    if chosen is None:
        lines.append("No feasible trial yet: every trial broke a budget or failed.")
    else:
        lines.append(f"**Chosen: trial {chosen['number']}**, {chosen['candidate']}: validation "
                     f"accuracy {_accuracy(chosen)}, p50 {chosen['latency_ms_p50']:.4f} ms, "
                     f"{_kib(chosen['size_bytes'])} KiB"
                     + (f", flash {_kib(chosen['flash_bytes'])} KiB, arena "
                        f"{_kib(chosen['arena_bytes'])} KiB" if budgets.micro else "") + ".")
        if test:
            lines.append(f"Its test accuracy, measured once now: {test['accuracy']:.4f} "
                         f"[{test['low']:.4f}, {test['high']:.4f}] on {test['n']} images "
                         f"(validation: {_accuracy(chosen)}).")
        lines.append("Rebuild it: see best.flags (the command is in its first lines).")
    lines += ["",
              f"{len(summary.rows)} trials; {len(summary.front)} on the feasible Pareto front; "
              f"{summary.rejected_before_training} rejected before training (over a hardware "
              f"budget when untrained), saving ≈ {summary.training_seconds_saved:.0f} s of "
              f"training." + (f" Hypervolume of the front: {hypervolume:.4g}."
                              if hypervolume is not None else ""), "",
              "| trial | state | candidate | validation accuracy [95%] | p50 ms | size KiB | "
              "flash KiB | arena KiB | feasible | front | note |",
              "|---:|---|---|---:|---:|---:|---:|---:|:---:|:---:|---|"]
    for row in summary.rows:
        note = ("rejected before training: " + "; ".join(row["over"])
                if row["rejected_before_training"] else "; ".join(row["over"]))
        if row["same_as"] is not None:
            note = f"same candidate as trial {row['same_as']}" + (f"; {note}" if note else "")
        if row["error"]:
            note = f"failed: {row['error']}"
        latency = row["latency_ms_p50"]
        lines.append(
            f"| {row['number']} | {row['state']} | {row['candidate']} | {_accuracy(row)} | "
            f"{'–' if latency is None else f'{latency:.4f}'} | {_kib(row['size_bytes'])} | "
            f"{_kib(row['flash_bytes'])} | {_kib(row['arena_bytes'])} | "
            f"{'✓' if row['feasible'] else '✗'} | {'★' if row['front'] else ''} | {note} |")
    lines += ["", "Validation accuracy: top-1 of the exported .tflite on the validation split "
              "(the search never reads the test split but for the chosen file, once). p50: "
              "LiteRT, batch 1, XNNPACK on, the benchmark's timing loop. Flash: the TFLite "
              "Micro model array; arena: the measured tensor arena + margin (export/micro/)."]
    return "\n".join(lines) + "\n"


def pareto_png(summary, budgets, title):
    """pareto.png as bytes: validation accuracy (%) vs p50 latency (ms, log x) of every
    trained trial; marker area ∝ file size; the feasible front filled and joined; infeasible
    trials hollow grey; the latency and accuracy budgets as dashed lines. matplotlib, Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in summary.rows
               if r["validation_accuracy"] is not None and r["latency_ms_p50"]]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if trained:
        largest = max(r["size_bytes"] or 1 for r in trained)
        for r in trained:
            area = 30 + 600 * (r["size_bytes"] or 0) / largest
            style = ({"facecolor": "tab:blue", "edgecolor": "tab:blue"} if r["front"] else
                     {"facecolor": "white", "edgecolor": "tab:blue" if r["feasible"]
                      else "grey"})
            ax.scatter(r["latency_ms_p50"], r["validation_accuracy"] * 100, s=area,
                       linewidth=1.2, zorder=3, **style)
            ax.annotate(str(r["number"]), (r["latency_ms_p50"], r["validation_accuracy"] * 100),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
        front = sorted(summary.front, key=lambda r: r["latency_ms_p50"])
        if front:
            ax.plot([r["latency_ms_p50"] for r in front],
                    [r["validation_accuracy"] * 100 for r in front], color="tab:blue",
                    linestyle="-", linewidth=1, zorder=2, label="feasible Pareto front")
        ax.set_xscale("log")
    if budgets.latency_ms is not None:
        ax.axvline(budgets.latency_ms, color="tab:red", linestyle="--", linewidth=1,
                   label=f"latency budget {budgets.latency_ms:g} ms")
    if budgets.min_accuracy is not None:
        ax.axhline(budgets.min_accuracy * 100, color="tab:orange", linestyle="--", linewidth=1,
                   label=f"accuracy floor {budgets.min_accuracy:.2%}")
    ax.set_xlabel("p50 latency, batch 1 (ms, log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.text(0.01, 0.01, "marker area ∝ .tflite size; filled: on the front; grey: infeasible; "
             f"{summary.rejected_before_training} rejected before training (not drawn)",
             fontsize=7, color="dimgrey")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def best_flags(row, workdir, data_settings, test=None):
    """best.flags: a tftool-train flagfile of the chosen trial, its `make all` command first
    (comment lines), then the flags: the data settings, the model's builder knobs and its
    input size."""
    from tftool.search import space

    candidate = space.from_params(row["params"])
    flags = [(f"--{k}" if v is True else f"--{k}={v}") for k, v in data_settings.items()
             if v not in (None, False) and k != "image_size"]
    flags += [f"--model={candidate.model}", f"--image_size={candidate.image_size}"]
    if candidate.width is not None:
        flags.append(f"--width={candidate.width}")
    if candidate.stages is not None:
        flags.append(f"--num_stages={candidate.stages}")
    if candidate.alpha is not None:
        flags.append(f"--alpha={candidate.alpha:g}")
    extra = (f" PRUNE_FLAGS=--target_sparsity={candidate.target_sparsity:g}"
             if candidate.target_sparsity is not None else "")
    target = "compress-all" if candidate.variant == "clustered_int8" else "all"
    accuracy = f"validation {_accuracy(row)}" + (
        f", test {stats.format_accuracy(test['accuracy'], test['n'])}" if test else "")
    return "\n".join([
        f"# tftool-search chose trial {row['number']}: {row['candidate']}; {accuracy}; "
        f"p50 {row['latency_ms_p50']:.4f} ms; {_kib(row['size_bytes'])} KiB.",
        f"# Rebuild it (full training, not the search's short runs):",
        f"#   make {target} WORKDIR={workdir}_best EXPORT_DIR={workdir}_best/exported "
        f"TRAIN_FLAGS=--flagfile={workdir}/search/best.flags{extra}",
        f"# and ship {workdir}_best/exported/<name>_{candidate.variant}.tflite.",
        *flags]) + "\n"
