"""tftool-search's figures: does the search find a model within a latency budget the default
model misses, as accurate, in few trials; is it better than random; do the untrained hardware
figures hold once trained; does an MCU budget give models that `make micro` builds in it.

Usage (from the repo root; ≈ 15 minutes per search on 2 cores):
  PYTHONPATH=. .venv/bin/python benchmarks/search_figures.py --dataset=digits
  python benchmarks/image_folder.py digits /tmp/tftool_digits28 --size=28 --copies=1
  PYTHONPATH=. .venv/bin/python benchmarks/search_figures.py \
      --dataset=folder:/tmp/tftool_digits28
  PYTHONPATH=. .venv/bin/python benchmarks/search_figures.py --dataset=digits --mcu

1. The default model (small_cnn, its default width and stages, the native input, int8) is
   trained as a trial is (tftool-search's trial.run, --search_epochs) and timed; the latency
   budget is --budget_fraction (0.5) of its p50 at 1 thread.
2. tftool-search runs --trials trials under that budget with TPE, then again with Optuna's
   RandomSampler (same trials, same seed): the most accurate feasible model of each, its
   validation accuracy against the default model's, the time taken, and both fronts'
   hypervolume (same reference point: accuracy 0, 1.1 × the slowest latency seen).
3. For every trained trial: untrained vs trained latency (ratio) and file size (ratio).
4. --mcu: a search under --max_flash_kb=64 --max_arena_kb=16; every trial on its front is
   exported with `tftool-export --micro --micro_flash_kb=64 --micro_ram_kb=16` (make micro's
   command) and must be written (within the budget).
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def search(workdir, dataset, extra):
    """Runs tftool-search as a process; returns (seconds, summary.json)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tftool", "search", f"--workdir={workdir}",
                           f"--dataset={dataset}", *extra], cwd=REPO, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError("\n".join((proc.stdout + proc.stderr).splitlines()[-10:]))
    with open(os.path.join(workdir, "search", "summary.json")) as f:
        return seconds, json.load(f)


def default_model(root, dataset_flag, epochs, threads):
    """(validation accuracy, p50 ms) of the default small_cnn int8 trained as a trial."""
    import tftool  # noqa: F401
    from tftool import data
    from tftool.benchmark import timing
    from tftool.search import hardware, space, trial

    dataset = data.load(dataset_flag)
    side = min(data.resolve_image_size(dataset, None))
    candidate = space.Candidate(model="small_cnn", image_size=side, variant="int8", width=32)
    settings = trial.Settings(epochs=epochs, seed=0, num_threads=threads,
                              timing=timing.TIMING["quick"],  # as tftool-search's
                              budgets=hardware.Budgets(),
                              data_settings={"dataset": dataset_flag})
    from tftool.train import strategy as strategy_lib

    figures = trial.run(candidate, os.path.join(root, "default"), dataset,
                        strategy_lib.build("auto", None, 1), settings)
    return figures["validation_accuracy"], figures["latency_ms_p50"]


def best(summary):
    chosen = summary["chosen"]
    return (chosen["validation_accuracy"], chosen["latency_ms_p50"], chosen["candidate"]) \
        if chosen else (None, None, "none feasible")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--search_epochs", type=int, default=10)
    parser.add_argument("--budget_fraction", type=float, default=0.5)
    parser.add_argument("--root", default="/tmp/tftool_search_figures")
    parser.add_argument("--mcu", action="store_true")
    args = parser.parse_args()

    from tftool.search import study

    root = os.path.join(args.root, args.dataset.replace(":", "_").replace("/", "_"))
    common = [f"--trials={args.trials}", f"--search_epochs={args.search_epochs}",
              "--timeout=900"]
    if args.mcu:
        workdir = os.path.join(root, "mcu")
        seconds, summary = search(workdir, args.dataset, common + [
            "--max_flash_kb=64", "--max_arena_kb=16"])
        print(f"MCU search: {len(summary['rows'])} trials in {seconds:.0f} s, "
              f"{summary['rejected_before_training']} rejected before training, "
              f"front {len(summary['front'])}")
        for row in summary["front"]:
            proc = subprocess.run(
                [sys.executable, "-m", "tftool", "export", f"--workdir={row['workdir']}",
                 f"--export_dir={row['workdir']}/micro_check", "--micro",
                 "--micro_flash_kb=64", "--micro_ram_kb=16", "--max_accuracy_drop=1",
                 "--allow_chance_accuracy"], cwd=REPO, capture_output=True, text=True)
            print(f"  trial {row['number']} {row['candidate']}: flash "
                  f"{row['flash_bytes'] / 1024:.1f} KiB, arena {row['arena_bytes'] / 1024:.1f}"
                  f" KiB; make micro: exit {proc.returncode} "
                  f"({'built within the budget' if proc.returncode == 0 else 'NOT built'})")
        return
    accuracy, p50 = default_model(root, args.dataset, args.search_epochs, 1)
    budget = args.budget_fraction * p50
    print(f"default small_cnn int8: validation {accuracy:.4f}, p50 {p50:.4f} ms at 1 thread; "
          f"budget {budget:.4f} ms")
    results = {}
    for sampler in ("tpe", "random"):
        workdir = os.path.join(root, sampler)
        results[sampler] = search(workdir, args.dataset, common + [
            f"--max_latency_ms={budget:.6f}", f"--sampler={sampler}", "--seed=0"])
    ceiling = 1.1 * max(r["latency_ms_p50"] for _, s in results.values() for r in s["rows"]
                        if r["latency_ms_p50"])
    print()
    print("| sampler | trials | time | rejected untrained | best within budget | validation "
          "accuracy | vs default | p50 ms | hypervolume |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for sampler, (seconds, summary) in results.items():
        acc, lat, what = best(summary)
        points = [(r["validation_accuracy"], r["latency_ms_p50"]) for r in summary["front"]]
        hv = study.hypervolume_2d(points, (0.0, ceiling))
        print(f"| {sampler} | {len(summary['rows'])} | {seconds / 60:.1f} min | "
              f"{summary['rejected_before_training']} | {what} | "
              f"{'–' if acc is None else f'{acc:.4f}'} | "
              f"{'–' if acc is None else f'{(acc - accuracy) * 100:+.2f} pt'} | "
              f"{'–' if lat is None else f'{lat:.4f}'} | {hv:.5f} |")
    ratios = [(r["latency_ms_p50"] / r["untrained"]["latency_ms_p50"],
               r["size_bytes"] / r["untrained"]["size_bytes"])
              for _, s in results.values() for r in s["rows"]
              if r["validation_accuracy"] and r["untrained"] and not r["same_as"]]
    if ratios:
        lat = sorted(x for x, _ in ratios)
        size = sorted(y for _, y in ratios)
        print(f"\nuntrained vs trained, {len(ratios)} trials: latency ratio median "
              f"{lat[len(lat) // 2]:.3f} (min {lat[0]:.3f}, max {lat[-1]:.3f}); size ratio "
              f"min {size[0]:.4f}, max {size[-1]:.4f}")


if __name__ == "__main__":
    main()
