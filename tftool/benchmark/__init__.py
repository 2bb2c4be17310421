"""Measuring models: latency (timing.py), benchmark rows (rows.py), sparsity read from the
flatbuffer (sparsity.py), fresh-process measurements (measure.py), what to ship (summary.py),
the Markdown report (report.py) and its figure (plot.py), how their figures are written
(cells.py); suite.py runs them for tftool-benchmark."""
