import numpy as np
import pytest

from tftool import bench, report


def test_accuracy_and_agreement():
    logits = np.eye(4)[[0, 1, 2, 3]]
    stats = bench.accuracy_stats(logits, np.array([0, 1, 2, 0]), np.array([0, 1, 0, 0]))
    assert stats == {"accuracy": 0.75, "agreement": 0.5}


def test_latency_stats_in_milliseconds():
    stats = bench.latency_stats(np.array([0.001] * 9 + [0.011]))
    assert stats["latency_ms_p50"] == pytest.approx(1.0)
    assert stats["latency_ms_p90"] == pytest.approx(2.0)


def test_file_sizes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * 10000)
    sizes = bench.file_sizes(str(path))
    assert sizes["size_bytes"] == 10000 and sizes["gzip_bytes"] < 200


def test_time_calls_counts_runs():
    calls = []
    times = bench.time_calls(lambda: calls.append(1), warmup=3, runs=7)
    assert len(calls) == 10 and times.shape == (7,) and np.all(times >= 0)


def test_markdown_table_has_a_line_per_row():
    rows = [{"variant": "float", "format": "keras", "accuracy": 0.99, "agreement": 1.0,
             "size_bytes": 2048, "gzip_bytes": 1024, "latency_ms_p50": 0.5,
             "latency_ms_p90": 0.6, "num_threads": 2},
            {"variant": "int8", "format": "tflite", "accuracy": 0.98, "agreement": None,
             "size_bytes": 512, "gzip_bytes": 256, "latency_ms_p50": 0.01,
             "latency_ms_p90": 0.02, "num_threads": 2}]
    lines = report.markdown_table(rows).strip().splitlines()
    assert len(lines) == 4
    assert "| int8 | tflite | 0.9800 | – | 0.5 | 0.2 |" in lines[3]
