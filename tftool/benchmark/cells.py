"""How a figure is written in report.md and its sentences: an accuracy with its interval, a
change in points with its interval, the model's input, a size in KiB.

summary.py (recommend's sentences), report.py (report.md's tables) and plot.py (report.png's
labels) share these, so a figure reads the same wherever it appears. "–" stands for an unknown
figure.
"""


def accuracy_cell(e, key="accuracy"):
    """"0.9861 [0.9678, 0.9940]": an accuracy with its 95% interval ("–" when unknown)."""
    value, interval = e.get(key), e.get(f"{key}_interval")
    if value is None:
        return "–"
    if not interval:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def change_points(paired):
    """(change, low, high) in percentage points of the other model's accuracy against the
    reference, from a stats.Paired dict (whose drop is reference − other, a fraction)."""
    return -paired["drop"] * 100, -paired["high"] * 100, -paired["low"] * 100


def delta_cell(paired):
    """"−1.11 [−2.81, +0.11] ≈" from a stats.Paired dict: the change in points with its 95%
    interval; ≈ marks a change within noise (the interval holds 0). A part that rounds to
    zero reads "0.00" (stats.format_signed)."""
    from tftool import stats

    if not paired:
        return "–"
    mark = " ≈" if paired["within_noise"] else ""
    return stats.format_change(*change_points(paired)) + mark


def input_cell(e):
    """The model's input as the model card names it ("uint8 RGB"), else its dtype, else "–"."""
    return e.get("input") or e.get("input_dtype") or "–"


def kib(size):
    """"3.2 KiB": a size in bytes, in KiB with one decimal."""
    return f"{size / 1024:.1f} KiB"
