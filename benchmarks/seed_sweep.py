"""Does the default pipeline hold on every seed? `make all` over N seeds, one table.

Usage (from the repo root; `make seed-sweep` runs the first line):
  PYTHONPATH=. .venv/bin/python benchmarks/seed_sweep.py --seeds=0,1,2,3,4
  PYTHONPATH=. .venv/bin/python benchmarks/seed_sweep.py --seeds=0,1,2 \
      --make_args="DATASET=folder:/tmp/cifar10-dev EPOCHS=15" --target=compress-all

Each seed runs `make <target> WORKDIR=<root>/seed<N> EXPORT_DIR=<root>/seed<N>/exported
FLAGS=--seed=<N> <make_args>` in its own folders (training is not bit-reproducible across runs
or CPUs: bfloat16, threads, so the question is whether the defaults pass on every seed, not on
one lucky run). It prints, per seed, make's exit status and time, and per variant and seed the
exported file's test accuracy with its 95% interval, its paired change against its gate
reference ("≈": within noise) and the gate's verdict: "ok", or "REFUSED" when export refused it
(read from make's log), or "–" when it was not exported. Exit status: 1 if any seed failed.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_seed(seed, root, target, make_args):
    """Runs make for one seed; returns (exit status, seconds, log text)."""
    workdir = os.path.join(root, f"seed{seed}")
    command = ["make", target, f"WORKDIR={workdir}", f"EXPORT_DIR={workdir}/exported",
               f"FLAGS=--seed={seed}", *make_args]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with open(os.path.join(root, f"seed{seed}.log"), "w") as f:
        f.write(proc.stdout + proc.stderr)
    return proc.returncode, seconds, proc.stdout + proc.stderr


def cards(export_dir):
    """{variant: model card} of every .json card in export_dir."""
    found = {}
    for path in glob.glob(os.path.join(export_dir, "*.json")):
        if path.endswith(".onnx.json"):  # the ONNX files' cards: variants of another runtime
            continue
        with open(path) as f:
            card = json.load(f)
        if isinstance(card, dict) and "variant" in card:
            found[card["variant"]] = card
    return found


def cell(card, refused):
    """"0.9861 [0.968, 0.994] −0.28≈ ok" for a variant of one seed: its test accuracy with
    the 95% interval, its paired change against the float Keras model in points (the
    benchmark's figure; without a benchmark, against its gate reference), ≈ within noise."""
    if refused:
        return "REFUSED"
    if card is None:
        return "–"
    interval = card.get("test_accuracy_interval") or [None, None]
    paired = (card.get("benchmark") or {}).get("paired_vs_float") or {}
    gate = card.get("accuracy_gate") or {}
    drop, noise = (paired.get("drop"), paired.get("within_noise")) if paired else (
        gate.get("drop", 0.0), gate.get("within_noise"))
    change = -drop * 100 + 0.0
    noise = "≈" if noise else ""
    text = f"{card['test_accuracy']:.4f}"
    if interval[0] is not None:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return f"{text} {change:+.2f}{noise} ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--root", default="/tmp/tftool_seed_sweep")
    parser.add_argument("--target", default="all", help="make target (all, compress-all)")
    parser.add_argument("--make_args", default="", help="extra make arguments, e.g. "
                        "\"DATASET=folder:/tmp/cifar10-dev EPOCHS=15\"")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    os.makedirs(args.root, exist_ok=True)
    results = {}
    for seed in seeds:
        status, seconds, log = run_seed(seed, args.root, args.target, args.make_args.split())
        refused = set(re.findall(r"refused (\w+):", log))
        results[seed] = (status, seconds, cards(os.path.join(args.root, f"seed{seed}",
                                                             "exported")), refused)
        print(f"seed {seed}: make {args.target} exit {status} in {seconds:.0f} s"
              + (f"; refused: {', '.join(sorted(refused))}" if refused else ""), flush=True)
    from tftool import stages
    from tftool.benchmark import cells

    order = list(stages.VARIANTS) + [stages.SELECTIVE_VARIANT]
    variants = sorted({v for _, _, found, refused in results.values()
                       for v in list(found) + sorted(refused)},
                      key=lambda v: (order.index(v) if v in order else len(order), v))
    print()
    print(f"make {args.target} {args.make_args}: test accuracy [95% interval], change vs the "
          f"float Keras model in points (≈ within noise), gate verdict")
    print()
    print("| variant | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    for v in variants:
        print(f"| {v} | " + " | ".join(cell(results[s][2].get(v), v in results[s][3])
                                        for s in seeds) + " |")
    for student, baseline in stages.BASELINES.items():
        pairs = [(results[s][2].get(student) or {}).get("benchmark", {}).get(
            "paired_vs_baseline") for s in seeds]
        if any(pairs):
            print(f"| {student} vs {baseline} | " + " | ".join(
                "–" if not p else cells.delta_cell(p) for p in pairs) + " |")
    print("| make exit status, time | " + " | ".join(
        f"{results[s][0]}, {results[s][1]:.0f} s" for s in seeds) + " |")
    return 1 if any(r[0] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
