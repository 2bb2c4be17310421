"""Benchmark rows -> a Markdown table."""

COLUMNS = (
    ("variant", "variant", "{}"),
    ("format", "format", "{}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("agreement", "agreement", "{:.4f}"),
    ("size_bytes", "size KiB", "{:.1f}"),
    ("gzip_bytes", "gzip KiB", "{:.1f}"),
    ("latency_ms_p50", "p50 ms", "{:.4f}"),
    ("latency_ms_p90", "p90 ms", "{:.4f}"),
    ("num_threads", "threads", "{}"),
    ("sparsity", "sparsity", "{:.2f}"),  # zero fraction of the .tflite's kernels (bench.py)
)


def _cell(key, fmt, row):
    value = row.get(key)
    if value is None:
        return "–"
    if key.endswith("_bytes"):
        value = value / 1024
    return fmt.format(value)


def markdown_table(rows):
    """Rows (dicts with bench.ROW_KEYS) -> a GitHub Markdown table, one line per row."""
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if k in ("variant", "format") else "---:"
                          for k, _, _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(k, fmt, row) for k, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
