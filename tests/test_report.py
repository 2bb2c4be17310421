import numpy as np
import pytest

from tftool.benchmark import report


def _row(variant, fmt, accuracy, size, p50, threads=1, batch=1, xnnpack=True, noisy=False):
    return {"name": "n", "variant": variant, "format": fmt, "accuracy": accuracy,
            "agreement": 1.0, "size_bytes": size, "gzip_bytes": size // 2,
            "latency_ms_p50": p50, "latency_ms_p90": p50 * 1.1, "num_threads": threads,
            "batch_size": batch, "xnnpack": None if fmt == "keras" else xnnpack,
            "throughput_ips": batch * 1e3 / p50, "noisy": noisy}


def _section(text, heading):
    """The lines of report.md under `heading`, up to the next heading."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


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
    lines = [l for l in _section(text, "## Every variant") if l.startswith("| ")]
    assert len(lines) == 3  # header + one line per variant, no Keras / float32 reference
    assert "| pruned_int8 | – | 0.9700 | – | – |" in lines[1] and "0.0200*" in lines[1]
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
    header, _, row = [l for l in _section(text, "## Every variant") if l.startswith("|")][:3]
    assert header.endswith("| values/kernel median (max) | values/channel max | 2:4 |")
    assert row.endswith("| 16 (151) | 16 | – |"), row


def _paired(drop, low, high, n=359):
    return {"n": n, "both": 300, "only_reference": 0, "only_other": 0, "neither": 59,
            "drop": drop, "low": low, "high": high, "within_noise": low <= 0 <= high}


def _entry(variant, accuracy, size, p50, paired=None, fmt="tflite", **extra):
    return {"variant": variant, "format": fmt, "accuracy": accuracy,
            "accuracy_interval": [accuracy - 0.01, min(1.0, accuracy + 0.01)],
            "size_bytes": size, "gzip_bytes": size // 2, "p50_1": p50, "p50_all": p50,
            "paired_vs_float": paired, "speedup_float32": None, "speedup_keras": None,
            "throughput_ips": None, "pareto": False, "delta_points": None,
            "file": f"n_{variant}.tflite", "input": "uint8 RGB", **extra}


def test_recommendation_names_one_variant_per_target_within_the_gate():
    noise = _paired(0.0028, -0.011, 0.018)
    entries = [
        _entry("float", 0.99, 4000, 1.0, fmt="keras"),
        _entry("int8", 0.99, 800, 0.030, noise),
        # as fast as int8 within 5% and smaller: the fastest pick by the size tie-break
        _entry("pqat_int8", 0.985, 790, 0.031, noise),
        # smallest of all, but really 3 points below float: outside the gate, never picked
        _entry("student_int8", 0.96, 200, 0.010, _paired(0.03, 0.012, 0.05)),
        _entry("float32", 0.992, 3000, 0.10, _paired(-0.002, -0.01, 0.006)),
    ]
    picks = {target: e["variant"] if e else None
             for target, e, _ in report.recommend(entries, {"rule": "paired",
                                                            "max_accuracy_drop": 0.01})}
    assert picks == {"phone / edge (MediaPipe Tasks, LiteRT): smallest": "pqat_int8",
                     "phone / edge: fastest at 1 thread": "pqat_int8",
                     "microcontroller (TFLite Micro)": None,
                     "most accurate on validation": "float32"}
    # with --gate=point and a 5-point tolerance the student qualifies and is both picks
    loose = {t: e["variant"] for t, e, _ in report.recommend(
        entries, {"rule": "point", "max_accuracy_drop": 0.05}) if e}
    assert loose["phone / edge (MediaPipe Tasks, LiteRT): smallest"] == "student_int8"
    text = report.summary_markdown(entries, "t", gate={"rule": "paired",
                                                       "max_accuracy_drop": 0.01})
    assert "`--gate=paired --max_accuracy_drop=0.01`" in text
    block = _section(text, "## What to ship")
    assert any("pqat_int8: `n_pqat_int8.tflite`" in l and "uint8 RGB" in l for l in block)
    assert any("run `make micro`" in l for l in block)


def test_microcontroller_pick_reads_the_micro_figures():
    noise = _paired(0.0, -0.01, 0.01)
    entries = [_entry("int8", 0.99, 800, 0.03, noise,
                      micro={"fits": True, "flash_bytes": 9000, "arena_bytes": 5000}),
               _entry("pqat_int8", 0.99, 800, 0.03, noise,
                      micro={"fits": True, "flash_bytes": 8000, "arena_bytes": 5000}),
               _entry("qat_int8", 0.99, 700, 0.03, noise,
                      micro={"fits": False, "flash_bytes": 7000, "arena_bytes": 90000})]
    target, pick, how = report.recommend(entries)[2]
    assert target.startswith("microcontroller") and pick["variant"] == "pqat_int8"
    assert how.startswith("micro/n_pqat_int8_model_data.cc (flash 7.8 KiB")


def test_findings_say_when_distillation_did_not_help_and_what_compression_cost():
    entries = [_entry("student_int8", 0.98, 200, 0.01, _paired(0.005, -0.01, 0.02),
                      paired_vs_baseline=_paired(0.0056, -0.011, 0.022)),
               _entry("pruned_int8", 0.96, 800, 0.03, _paired(0.026, 0.02, 0.033))]
    text = report.summary_markdown(entries, "t")
    assert ("student_int8 vs its baseline (the same student trained on the labels alone): "
            "-0.56 [-2.20, +1.10] points; distillation did not help here") in text
    assert "pruned_int8: cost 2.60 points against the float model" in text
    row = next(l for l in _section(text, "## Every variant") if l.startswith("| pruned_int8"))
    assert "| 0.9600 [0.9500, 0.9700] |" in row and "| -2.60 [-3.30, -2.00] |" in row
