import time

import numpy as np
import pytest

from tftool.benchmark import rows as bench, timing
from tftool.benchmark import measure
from tftool.benchmark import report


def test_latency_stats_in_milliseconds():
    stats = timing.latency_stats(np.array([0.001] * 9 + [0.011]), batch_size=4)
    assert stats["latency_ms_p50"] == pytest.approx(1.0)
    assert stats["latency_ms_p90"] == pytest.approx(2.0)
    assert stats["latency_ms_p99"] == pytest.approx(10.1)
    assert stats["throughput_ips"] == pytest.approx(4000)  # 4 images per 1 ms
    assert stats["latency_cv"] == pytest.approx(np.std([1] * 9 + [11]) / 2.0)
    assert stats["timed_runs"] == 10 and stats["timed_seconds"] == pytest.approx(0.02)


def test_p50_cv_sees_drift_not_outliers():
    steady = np.full(1000, 0.001)
    steady[::97] = 0.05                  # rare preemptions: huge classic CV, p50 unmoved
    drifting = np.linspace(0.001, 0.002, 1000)  # the machine got busier while we measured
    a, b = timing.latency_stats(steady), timing.latency_stats(drifting)
    assert a["latency_cv"] > 1 and a["p50_cv"] < 0.01
    assert b["p50_cv"] > 0.15
    rows = timing.flag_noisy([dict(a), dict(b)], max_cv=0.05)
    assert [r["noisy"] for r in rows] == [False, True]


def test_file_sizes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * 10000)
    sizes = bench.file_sizes(str(path))
    assert sizes["size_bytes"] == 10000 and sizes["gzip_bytes"] < 200


def test_time_calls_needs_runs_and_seconds():
    calls = []
    times = timing.time_calls(lambda: calls.append(1), min_runs=7, min_seconds=0,
                             warmup_runs=3, warmup_seconds=0)
    assert len(calls) == 10 and times.shape == (7,) and np.all(times >= 0)
    start = time.perf_counter()
    times = timing.time_calls(lambda: time.sleep(0.001), min_runs=2, min_seconds=0.05,
                             warmup_runs=0, warmup_seconds=0.02)
    assert len(times) > 2 and times.sum() >= 0.05  # the seconds bound, not the runs, stopped it
    assert time.perf_counter() - start >= 0.07     # warm-up time came first


def test_row_keeps_the_contract_keys_first():
    latency = timing.latency_stats(np.array([0.001, 0.002]))
    accuracy = {"accuracy": 0.9, "agreement": 1.0, "mean_abs_dlogit": 0.0,
                "per_class_accuracy": {"a": 0.9}}
    r = bench.row("n", "int8", "tflite", accuracy, {"size_bytes": 1, "gzip_bytes": 1}, latency,
                  2, 1, xnnpack=True)
    assert tuple(r)[:len(bench.ROW_KEYS)] == bench.ROW_KEYS
    assert r["xnnpack"] is True and r["per_class_accuracy"] == {"a": 0.9}


def test_memory_of_a_fresh_tflite_process(tmp_path):
    from tftool import models
    from tftool.export import convert

    path = tmp_path / "m.tflite"
    path.write_bytes(convert.to_tflite(models.build("small_cnn", (8, 8, 1), 10, width=8),
                                       "float32"))
    # The parent holds 1 GiB more than a LiteRT process needs: the child's peak must not
    # count it (getrusage's ru_maxrss carries the parent's across fork and exec).
    ballast = bytearray(2 ** 30)
    ballast[::4096] = b"\1" * (len(ballast) // 4096)  # resident, not just reserved
    result = measure.in_subprocess({"task": "memory", "path": str(path), "fmt": "tflite",
                                    "num_threads": 1})
    del ballast
    assert 0 < result["runtime_rss_bytes"] <= result["peak_rss_bytes"] < 2 ** 29, result


def test_markdown_table_has_a_line_per_row():
    rows = [{"variant": "float", "format": "keras", "accuracy": 0.99, "agreement": 1.0,
             "size_bytes": 2048, "gzip_bytes": 1024, "latency_ms_p50": 0.5,
             "latency_ms_p90": 0.6, "num_threads": 2, "batch_size": 1, "xnnpack": None},
            {"variant": "int8", "format": "tflite", "accuracy": 0.98, "agreement": None,
             "size_bytes": 512, "gzip_bytes": 256, "latency_ms_p50": 0.01,
             "latency_ms_p90": 0.02, "num_threads": 2, "batch_size": 1, "xnnpack": False,
             "noisy": True}]
    lines = report.markdown_table(rows).strip().splitlines()
    assert len(lines) == 4
    assert lines[3].startswith("| int8 | tflite | off | 2 | 1 | 0.9800 | – | 0.5 | 0.2 |")
    assert lines[3].endswith("| noisy | – |")  # no sparsity figure in this row
