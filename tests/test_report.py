import numpy as np
import pytest

from tftool.benchmark import report


def _row(variant, fmt, accuracy, size, p50, threads=1, batch=1, xnnpack=True, noisy=False):
    return {"name": "n", "variant": variant, "format": fmt, "accuracy": accuracy,
            "agreement": 1.0, "size_bytes": size, "gzip_bytes": size // 2,
            "latency_ms_p50": p50, "latency_ms_p90": p50 * 1.1, "num_threads": threads,
            "batch_size": batch, "xnnpack": None if fmt == "keras" else xnnpack,
            "throughput_ips": batch * 1e3 / p50, "noisy": noisy}


def _rows():
    rows = []
    for variant, fmt, acc, size, p50 in [("float", "keras", 0.99, 4000, 1.0),
                                         ("float32", "tflite", 0.99, 3000, 0.10),
                                         ("int8", "tflite", 0.985, 800, 0.03),
                                         ("qat_int8", "tflite", 0.99, 800, 0.03),
                                         ("float16", "tflite", 0.99, 1500, 0.10)]:
        for threads in (1, 2):
            for batch in (1, 8):
                rows.append(_row(variant, fmt, acc, size, p50 * batch / threads, threads, batch))
                if fmt == "tflite":
                    rows.append(_row(variant, fmt, acc, size, 3 * p50 * batch, threads, batch,
                                     xnnpack=False))
    return rows


def test_summary_picks_batch1_xnnpack_on_and_computes_speedups():
    entries = {e["variant"]: e for e in report.summarize(_rows())}
    int8 = entries["int8"]
    assert int8["p50_1"] == pytest.approx(0.03) and int8["p50_all"] == pytest.approx(0.015)
    assert int8["speedup_keras"] == pytest.approx(1.0 / 0.03)
    assert int8["speedup_float32"] == pytest.approx(0.10 / 0.03)
    assert int8["delta_points"] == pytest.approx(-0.5)
    assert int8["throughput_ips"] == pytest.approx(8 * 1e3 / (0.03 * 8 / 2))


def test_pareto_marks_the_undominated_variants():
    entries = {e["variant"]: e for e in report.summarize(_rows())}
    # qat_int8 is as fast and small as int8 and more accurate; float16 beats float32 on size
    # and qat_int8 beats both: only qat_int8 remains.
    assert {v for v, e in entries.items() if e["pareto"]} == {"qat_int8"}
    assert report.pareto_front([(0.9, 1.0, 10), (0.95, 2.0, 10), (0.8, 0.5, 5)]) == [0, 1, 2]
    # latencies within 5% are a tie: the smaller file wins
    assert report.pareto_front([(0.9, 1.00, 10), (0.9, 1.03, 5)]) == [1]
    assert report.pareto_front([(0.9, None, 10), (0.8, 2.0, 20)]) == [1]


def test_any_set_of_variants_renders():
    rows = [_row("pruned_int8", "tflite", 0.97, 500, 0.02, noisy=True),
            _row("student_int8", "tflite", 0.95, 200, 0.01)]
    entries = report.summarize(rows)
    text = report.summary_markdown(entries, "t", ["a note"])
    lines = [l for l in text.splitlines() if l.startswith("| ")]
    assert len(lines) == 3  # header + one line per variant, no Keras / float32 reference
    assert "| pruned_int8 | 0.9700 | – |" in lines[1] and "0.0200*" in lines[1]
    assert lines[2].endswith("| ★ |")
    png = report.plot_png(entries, "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_plot_of_the_full_set_is_a_png():
    png = report.plot_png(report.summarize(_rows()), "digits")
    assert png[:4] == b"\x89PNG"


def test_clustered_variants_show_values_per_kernel():
    clustered = _row("clustered_int8", "tflite", 0.98, 600, 0.03)
    clustered.update(unique_per_channel_max=16, m_by_n=None, kernel_patterns=[
        {"op": "CONV_2D", "tensor": t, "unique": u, "unique_per_channel": min(u, 16),
         "m_by_n": None} for t, u in (("c0", 151), ("c1", 16), ("c2", 14), ("d", 16))])
    text = report.summary_markdown(report.summarize(
        [clustered, _row("int8", "tflite", 0.985, 800, 0.03)]), "t")
    header, _, row = [l for l in text.splitlines() if l.startswith("|")][:3]
    assert header.endswith("| values/kernel median (max) | values/channel max | 2:4 |")
    assert row.endswith("| 16 (151) | 16 | – |"), row
