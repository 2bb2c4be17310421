import numpy as np
import pytest

from tftool.benchmark import cells, plot, report, summary


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
    entries = {e["variant"]: e for e in summary.summarize(_rows())}
    int8 = entries["int8"]
    assert int8["p50_1"] == pytest.approx(0.03) and int8["p50_all"] == pytest.approx(0.015)
    assert int8["speedup_keras"] == pytest.approx(1.0 / 0.03)
    assert int8["speedup_float32"] == pytest.approx(0.10 / 0.03)
    assert int8["delta_points"] == pytest.approx(-0.5)
    assert int8["throughput_ips"] == pytest.approx(8 * 1e3 / (0.03 * 8 / 2))


def test_pareto_marks_the_undominated_variants():
    entries = {e["variant"]: e for e in summary.summarize(_rows())}
    # qat_int8 is as fast and small as int8 and more accurate; float16 beats float32 on size
    # and qat_int8 beats both: only qat_int8 remains.
    assert {v for v, e in entries.items() if e["pareto"]} == {"qat_int8"}
    assert summary.pareto_front([(0.9, 1.0, 10), (0.95, 2.0, 10), (0.8, 0.5, 5)]) == [0, 1, 2]
    # latencies within 5% are a tie: the smaller file wins
    assert summary.pareto_front([(0.9, 1.00, 10), (0.9, 1.03, 5)]) == [1]
    assert summary.pareto_front([(0.9, None, 10), (0.8, 2.0, 20)]) == [1]


def test_any_set_of_variants_renders():
    rows = [_row("pruned_int8", "tflite", 0.97, 500, 0.02, noisy=True),
            _row("student_int8", "tflite", 0.95, 200, 0.01)]
    entries = summary.summarize(rows)
    text = report.summary_markdown(entries, "t", ["a note"])
    lines = [l for l in _section(text, "## Every variant") if l.startswith("| ")]
    assert len(lines) == 3  # header + one line per variant, no Keras / float32 reference
    assert "| pruned_int8 | – | 0.9700 | – | – |" in lines[1] and "0.0200*" in lines[1]
    assert lines[2].endswith("| ★ |")
    png = plot.plot_png(entries, "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_plot_of_the_full_set_is_a_png():
    png = plot.plot_png(summary.summarize(_rows()), "digits")
    assert png[:4] == b"\x89PNG"


def test_clustered_variants_show_values_per_kernel():
    clustered = _row("clustered_int8", "tflite", 0.98, 600, 0.03)
    clustered.update(unique_per_channel_max=16, m_by_n=None, kernel_patterns=[
        {"op": "CONV_2D", "tensor": t, "unique": u, "unique_per_channel": min(u, 16),
         "m_by_n": None} for t, u in (("c0", 151), ("c1", 16), ("c2", 14), ("d", 16))])
    text = report.summary_markdown(summary.summarize(
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


def _picks(entries, gate=None, **folders):
    return {p["target"]: p for p in summary.recommend(entries, gate, **folders)}


def test_recommendation_names_one_file_per_target_with_its_reason():
    noise = _paired(0.0028, -0.011, 0.018)  # -0.28 [-1.80, +1.10] points vs float
    entries = [
        _entry("float", 0.99, 4000, 1.0, fmt="keras"),
        _entry("int8", 0.99, 800, 0.030, noise, p50_all=0.020),
        # 10 bytes smaller than int8: the phone's pick; slower on 2 threads than int8
        _entry("pqat_int8", 0.985, 790, 0.031, noise, p50_all=0.024),
        # smallest of all, but really 3 points below float: outside the gate, never picked
        _entry("student_int8", 0.96, 200, 0.010, _paired(0.03, 0.012, 0.05)),
        _entry("float32", 0.992, 3000, 0.10, _paired(-0.002, -0.01, 0.006), p50_all=0.06),
    ]
    for e in entries:
        e.update(threads_1=1, threads_all=2)
    gate = {"rule": "paired", "max_accuracy_drop": 0.01}
    picks = _picks(entries, gate, workdir="work", export_dir="work/exported")
    assert {t: p["entry"] and p["entry"]["variant"] for t, p in picks.items()} == {
        "Phone": "pqat_int8", "Edge CPU": "int8", "Microcontroller": None,
        "Most accurate": "float32"}
    assert picks["Phone"]["text"] == (
        "ship `work/exported/n_pqat_int8.tflite` (input uint8 RGB) — within noise of the most "
        "accurate (-0.28 [-1.80, +1.10] points vs float), the smallest of those: 0.8 KiB, "
        "p50 0.0310 ms at 1 thread.")
    assert picks["Edge CPU"]["setting"] == "LiteRT, batch 1, 2 threads"
    assert "the fastest of those at 2 threads: p50 0.0200 ms at 2 threads" in (
        picks["Edge CPU"]["text"])
    assert picks["Most accurate"]["text"].startswith(
        "`work/exported/n_float32.tflite`, test accuracy 0.9920 [0.9820, 1.0000], +0.20 "
        "[-0.60, +1.00] points vs float; within noise of it: int8, pqat_int8 (3 of the 3 files "
        "within the gate).")
    # with --gate=point and a 5-point tolerance the student qualifies, but it is not within
    # noise of float32 (their intervals do not overlap): still not picked
    loose = _picks(entries, {"rule": "point", "max_accuracy_drop": 0.05})
    assert loose["Phone"]["entry"]["variant"] == "pqat_int8"
    text = report.summary_markdown(entries, "t", gate=gate, workdir="work",
                                   export_dir="work/exported")
    assert "`--gate=paired --max_accuracy_drop=0.01`" in text
    block = _section(text, "## What to ship")
    assert block[1].startswith("How: only files within the accuracy gate") and (
        "the phone gets the smallest, then the fastest at 1 thread" in block[1])
    assert any(l.startswith("- **Phone** (LiteRT / MediaPipe Tasks, batch 1, 1 thread): ship "
                            "`work/exported/n_pqat_int8.tflite`") for l in block), block
    assert ("- Outside the gate against float, never picked: student_int8 (-3.00 "
            "[-5.00, -1.20] points).") in block
    # the make and the tftool-export commands name the report's own folders
    assert any(l.startswith("- **Microcontroller**") and
               "`make micro WORKDIR=work EXPORT_DIR=work/exported`" in l and
               "`tftool-export --workdir=work --export_dir=work/exported --micro`" in l
               for l in block), block
    print("\n".join(block))  # the example in the report of this change


def test_ties_within_noise_go_to_the_smallest_not_the_best_on_validation():
    # real photos: four files within noise of each other; the old "most accurate on
    # validation" chose the lowest test accuracy. Now: the smallest of those within noise.
    entries = [
        _entry("float32", 0.853, 4700_000, 4.1, _paired(0.0, -0.003, 0.003),
               validation_accuracy=0.860),
        _entry("int8", 0.850, 1200_000, 1.6, _paired(0.003, -0.002, 0.008),
               validation_accuracy=0.861),
        _entry("qat_int8", 0.851, 1200_000, 1.5, _paired(0.002, -0.003, 0.007),
               validation_accuracy=0.858),
        _entry("float16", 0.853, 2400_000, 4.0, _paired(0.0, -0.003, 0.003),
               validation_accuracy=0.859),
    ]
    picks = _picks(entries)
    # int8 and qat_int8 are equally small: the faster one
    assert picks["Phone"]["entry"]["variant"] == "qat_int8"
    assert "the smallest of those and, of the equally small, the fastest: 1171.9 KiB" in (
        picks["Phone"]["text"])
    # the highest test accuracy, float32 and float16 tied: the smaller
    assert picks["Most accurate"]["entry"]["variant"] == "float16"
    assert "within noise of it: float32, int8, qat_int8 (4 of the 4" in (
        picks["Most accurate"]["text"])
    # one thread count measured: the edge line says so and gives the command
    assert picks["Edge CPU"]["entry"] is None
    assert "`tftool-benchmark --workdir=workdir --export_dir=exported --threads=1,N`" in (
        picks["Edge CPU"]["text"])
    # four threads measured: the edge CPU gets the fastest there, p50 within 5% a tie broken
    # by size (int8 and qat_int8 are equally small: then the faster)
    for e, p50_all in zip(entries, (2.0, 0.50, 0.51, 1.9)):
        e.update(threads_1=1, threads_all=4, p50_all=p50_all)
    edge = _picks(entries)["Edge CPU"]
    assert edge["entry"]["variant"] == "int8" and edge["setting"] == "LiteRT, batch 1, 4 threads"
    assert edge["text"].endswith("the smallest of those whose p50 at 4 threads is within ±5% "
                                 "of the fastest: p50 0.5000 ms at 4 threads, 1171.9 KiB.")
    # a file beyond noise of the best is not eligible for the tie, however small
    entries.append(_entry("pruned_int8", 0.84, 900_000, 1.5, _paired(0.013, 0.006, 0.02)))
    assert _picks(entries)["Phone"]["entry"]["variant"] == "qat_int8"
    assert summary.within_noise_of(entries[1], entries[0])
    assert not summary.within_noise_of(entries[-1], entries[0])


def test_microcontroller_pick_reads_the_micro_figures():
    noise = _paired(0.0, -0.01, 0.01)
    def files(variant):  # as export_micro names them in the card
        return [f"n_{variant}_model_data.h", f"n_{variant}_model_data.cc",
                f"n_{variant}_op_resolver.h"]

    entries = [_entry("int8", 0.99, 800, 0.03, noise,
                      micro={"fits": True, "flash_bytes": 9000, "arena_bytes": 5000,
                             "files": files("int8")}),
               _entry("pqat_int8", 0.99, 800, 0.03, noise,
                      micro={"fits": True, "flash_bytes": 8000, "arena_bytes": 5000,
                             "files": files("pqat_int8")}),
               _entry("qat_int8", 0.99, 700, 0.03, noise,
                      micro={"fits": False, "flash_bytes": 7000, "arena_bytes": 90000})]
    pick = _picks(entries, export_dir="out")["Microcontroller"]
    assert pick["entry"]["variant"] == "pqat_int8"
    assert pick["text"].startswith("ship `out/micro/n_pqat_int8_model_data.cc` and its `.h` "
                                   "(the pqat_int8 model converted for TFLM with int8 input")
    assert pick["text"].endswith("the least flash of those: flash 7.8 KiB, tensor arena "
                                 "4.9 KiB.")
    for e in entries:
        e["micro"]["fits"] = False
    pick = _picks(entries)["Microcontroller"]
    assert pick["entry"] is None and "none of the 3 measured integer files fits" in pick["text"]


def test_micro_commands_quote_the_folders():
    assert summary.micro_commands() == (
        "make micro WORKDIR=workdir EXPORT_DIR=exported",
        "tftool-export --workdir=workdir --export_dir=exported --micro")
    assert summary.micro_commands("my work", "out")[0] == "make micro WORKDIR='my work' " \
                                                          "EXPORT_DIR=out"


def test_changes_that_round_to_zero_read_0_00():
    from tftool import stats

    assert stats.format_signed(-0.004) == "0.00" and stats.format_signed(0.0) == "0.00"
    assert stats.format_signed(-0.0) == "0.00" and stats.format_signed(0.005001) == "+0.01"
    assert stats.format_signed(-1.114) == "-1.11"
    assert stats.format_change(-0.0, -0.001, 0.0) == "0.00 [0.00, 0.00]"
    assert stats.paired_from_counts(351, 0, 0, 8).describe(counts=False) == (
        "0.00 points [-1.01, +1.01], within noise")  # no "+0.00" for an unchanged accuracy
    tiny = stats.Paired(n=359, both=359, only_reference=0, only_other=0, neither=0,
                        drop=-0.0, low=-0.00002, high=0.00003)  # [-0.003, +0.002] points
    assert tiny.describe(counts=False) == "0.00 points [0.00, 0.00], within noise"
    assert cells.delta_cell(tiny.as_dict()) == "0.00 [0.00, 0.00] ≈"
    assert cells.delta_cell(_paired(0.0, -0.0102, 0.0102)) == "0.00 [-1.02, +1.02] ≈"
    keras = next(l for l in _section(report.summary_markdown(summary.summarize(_rows()), "t"),
                                     "## Every variant") if l.startswith("| float (Keras)"))
    assert "| 0.00 |" in keras and "0.00 |" in keras and "-0.00" not in keras


def _many_close_points():
    """The issue's report.png: accuracies within ~1 point, 95% intervals of ±2.2 points, and
    variants sharing an accuracy and a latency (their labels would fall on one another)."""
    entries = []
    for i, (variant, acc, size, p50) in enumerate([
            ("float32", 0.853, 4700_000, 4.1), ("float16", 0.853, 2400_000, 4.1),
            ("dynamic_range", 0.852, 1250_000, 4.0), ("int8", 0.850, 1200_000, 1.6),
            ("qat_int8", 0.851, 1200_000, 1.6), ("pruned_int8", 0.846, 1200_000, 1.6),
            ("pqat_int8", 0.847, 1200_000, 1.62), ("int16x8", 0.853, 2400_000, 9.0)]):
        e = _entry(variant, acc, size, p50, pareto=i in (3, 4))
        e["accuracy_interval"] = [acc - 0.022, acc + 0.022]
        entries.append(e)
    entries.append(_entry("float", 0.853, 4800_000, 12.0, fmt="keras"))
    entries[-1]["accuracy_interval"] = [0.831, 0.875]
    return entries


def test_plot_spans_every_interval_and_labels_do_not_overlap():
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    entries = _many_close_points()
    fig = plot.plot_figure(entries, "photos")
    try:
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        for e in entries:  # every 95% interval bar inside the plot, with a margin
            bar_low, bar_high = (v * 100 for v in e["accuracy_interval"])
            assert low < bar_low - 0.2 and bar_high + 0.2 < high, (e["variant"], low, high)
        assert (low, high) == pytest.approx(plot.plot_limits(entries)[1])
        x_low, x_high = ax.get_xlim()
        assert all(x_low < e["p50_1"] < x_high for e in entries)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = [t for t in ax.texts if "KiB" in t.get_text()]
        assert len(labels) == len(entries)
        boxes = [Text.get_window_extent(t, renderer) for t in labels]  # text, not its line
        figure = fig.bbox
        for i, a in enumerate(boxes):
            assert figure.x0 <= a.x0 and a.x1 <= figure.x1 and figure.y0 <= a.y0 <= a.y1 <= \
                figure.y1, labels[i].get_text()
            for j in range(i):
                assert not a.overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
    finally:
        plt.close(fig)
    assert plot.plot_png(entries, "photos")[:4] == b"\x89PNG"


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
