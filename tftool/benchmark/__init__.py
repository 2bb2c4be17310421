"""Measuring models: latency (timing.py), benchmark rows (rows.py), sparsity read from the
flatbuffer (sparsity.py), fresh-process measurements (measure.py) and the report (report.py)."""
