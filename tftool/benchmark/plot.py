"""report.png: p50 latency at 1 thread vs test accuracy of summary.summarize's entries, with
the 95% intervals, marker area ∝ file size and the Pareto front (matplotlib, imported inside
the functions, Agg backend).
"""
import io

from tftool.benchmark.cells import kib
from tftool.benchmark.report import FORMAT_SUFFIX


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
        text = f"{e['variant']}{FORMAT_SUFFIX.get(e['format'], '')} · {kib(e['size_bytes'])}"
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
