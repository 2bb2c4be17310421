"""Measures tftool's compression defaults on real photos, over seeds, with paired intervals.

Usage (from the repo root; `make bench-defaults` runs the default study on the development
photos, `tar -xf ../shared/data/cifar10-dev.tar -C /tmp` first):
  PYTHONPATH=. .venv/bin/python benchmarks/compress_defaults.py \
      --dataset=folder:/tmp/cifar10-dev --seeds=0,1,2 --float_epochs=15 --study=prune
  ... --study=distill --configs="T=2 w=0.5 epochs=30;T=4 w=0.1 epochs=30"

For each seed the float model is trained once (tftool-train --epochs=--float_epochs --seed=S)
into ROOT/seedS/float. Each configuration of a study then runs the real entry points
(subprocesses, as `make` runs them) in its own workdir ROOT/seedS/<study>/<config>/, whose
float/ is a link to the seed's float model, and is compared image by image with its
reference on the test and the validation split (tftool.stats: paired drop, 95% interval):
  prune    tftool-prune with the config's flags; reference: the float model
  pqat     tftool-prune, then tftool-quantize --from=pruned; reference: the float model
  cluster  tftool-cluster (+ tftool-quantize --from=clustered when cqat=1); reference: float
  distill  tftool-distill with the config's flags; reference: the same student trained on
           the labels alone (hard_label_weight=1: the same initial weights, epochs and seed,
           the teacher unused), run as the config "baseline" of the same epochs
A config is "key=value" pairs separated by spaces; keys are the entry point's flags (T is
--temperature, w --hard_label_weight) plus cqat=1. Results are cached in ROOT/results.json,
so an interrupted study resumes. A config means the entry point's defaults when it ran: after
a default changes (clustering and distillation train without augmentation since this script
measured them with it), spell the old setting out (augment=true) or use another --root. The
table gives, per config, each seed's test accuracy and its change against the reference in
points with the 95% interval (≈: within noise), then the mean change over seeds. The figures
are Keras models' (the export's int8 conversion moves them by ≤ 0.3 points here; the seed
sweep checks the exported files end to end).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_CONFIGS = {
    "prune": ["target_sparsity=0.5", "target_sparsity=0.6", "target_sparsity=0.7",
              "target_sparsity=0.8", "target_sparsity=0.8 epochs=20",
              "target_sparsity=0.8 learning_rate=1e-3", "target_sparsity=0.7 epochs=20"],
    "pqat": ["target_sparsity=0.5", "target_sparsity=0.7"],
    "cluster": ["number_of_clusters=16 augment=true", "number_of_clusters=8",
                "number_of_clusters=16", "number_of_clusters=32", "number_of_clusters=16 cqat=1"],
    "distill": ["T=1 w=0.5 epochs=30", "T=2 w=0.5 epochs=30", "T=4 w=0.5 epochs=30",
                "T=8 w=0.5 epochs=30", "T=4 w=0.1 epochs=30", "T=4 w=0.9 epochs=30",
                "T=2 w=0.1 epochs=30", "T=2 w=0.9 epochs=30"],
}
ALIASES = {"T": "temperature", "w": "hard_label_weight"}


def parse(config):
    """"T=2 w=0.5 epochs=30" -> {"temperature": "2", "hard_label_weight": "0.5", ...}."""
    pairs = {}
    for item in config.split():
        key, _, value = item.partition("=")
        pairs[ALIASES.get(key, key)] = value
    return pairs


def slug(config):
    return "_".join(config.split()).replace("=", "") or "default"


def cli(tool, *args, log=None):
    """Runs tftool-<tool> (python -m tftool <tool>); raises RuntimeError with its last lines
    when it fails."""
    proc = subprocess.run([sys.executable, "-m", "tftool", tool, *args], cwd=REPO, text=True,
                          capture_output=True)
    if log:
        with open(log, "a") as f:
            f.write(f"$ tftool-{tool} {' '.join(args)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode:
        raise RuntimeError(f"tftool-{tool} failed ({proc.returncode}):\n"
                           + "\n".join((proc.stdout + proc.stderr).splitlines()[-8:]))


def ensure_float(root, seed, dataset, epochs, extra):
    workdir = os.path.join(root, f"seed{seed}")
    cli("train", f"--workdir={workdir}", f"--dataset={dataset}", f"--epochs={epochs}",
        f"--seed={seed}", *extra, log=os.path.join(workdir + ".log"))
    return workdir


def config_workdir(root, seed, study, config):
    """ROOT/seedS/<study>/<config>/ with float/ linked to the seed's float model."""
    workdir = os.path.join(root, f"seed{seed}", study, slug(config))
    os.makedirs(workdir, exist_ok=True)
    link = os.path.join(workdir, "float")
    if not os.path.lexists(link):
        os.symlink(os.path.join(root, f"seed{seed}", "float"), link)
    return workdir


def run_config(root, seed, study, config):
    """Runs one configuration's entry points; returns (workdir, the stage to evaluate)."""
    workdir = config_workdir(root, seed, study, config)
    flags = parse(config)
    cqat = flags.pop("cqat", "0") == "1"
    args = [f"--workdir={workdir}", f"--seed={seed}"] + [f"--{k}={v}" for k, v in flags.items()]
    log = os.path.join(workdir, "run.log")
    if study == "prune":
        cli("prune", *args, log=log)
        return workdir, "pruned"
    if study == "pqat":
        cli("prune", *args, log=log)
        cli("quantize", f"--workdir={workdir}", f"--seed={seed}", "--from=pruned", log=log)
        return workdir, "pqat"
    if study == "cluster":
        cli("cluster", *args, log=log)
        if cqat:
            cli("quantize", f"--workdir={workdir}", f"--seed={seed}", "--from=clustered",
                log=log)
            return workdir, "cqat"
        return workdir, "clustered"
    if study == "distill":
        cli("distill", *args, log=log)
        return workdir, "student"
    raise ValueError(f"unknown study {study!r}; allowed: {', '.join(DEFAULT_CONFIGS)}")


def correctness(workdir, stage, dataset, image_size):
    """{split: (accuracy, bool [n] per-image correctness)} of a stage's Keras model."""
    from tftool import data, evaluate, stage_runner

    model = stage_runner.load_stage_model(workdir, stage)
    out = {}
    for split in ("test", "validation"):
        result = evaluate.evaluate({"m": evaluate.keras_scorer(model)},
                                   data.test_batches(dataset, image_size, split=split),
                                   dataset.class_names)["m"]
        out[split] = (result["accuracy"], result[evaluate.CORRECT].tolist())
    return out


def baseline_config(config):
    """The distill reference of `config`: the same student, epochs and flags, labels only
    (w=1, no mixup; the teacher and temperature are then unused)."""
    flags = parse(config)
    keep = {k: v for k, v in flags.items()
            if k not in ("temperature", "hard_label_weight", "mixup_alpha", "teacher",
                         "teacher_width")}
    return " ".join(["w=1"] + [f"{k}={v}" for k, v in keep.items()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="folder:/tmp/cifar10-dev")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--float_epochs", type=int, default=15)
    parser.add_argument("--float_flags", default="", help="extra tftool-train flags")
    parser.add_argument("--study", required=True, choices=sorted(DEFAULT_CONFIGS))
    parser.add_argument("--configs", default=None, help="';'-separated configs (default: the "
                        "study's grid, DEFAULT_CONFIGS)")
    parser.add_argument("--root", default="/tmp/tftool_compress_defaults")
    args = parser.parse_args()

    from tftool import data, fileio, stats

    seeds = [int(s) for s in args.seeds.split(",")]
    configs = (args.configs.split(";") if args.configs else DEFAULT_CONFIGS[args.study])
    configs = [c.strip() for c in configs]
    os.makedirs(args.root, exist_ok=True)
    cache_path = os.path.join(args.root, "results.json")
    cache = {}
    if os.path.exists(cache_path):
        with open(cache_path) as f:
            cache = json.load(f)
    dataset = data.load(args.dataset)
    size = data.resolve_image_size(dataset, None)

    def measured(seed, study, config):
        key = f"{seed}|{study}|{config}"
        if key not in cache:
            start = time.perf_counter()
            workdir, stage = run_config(args.root, seed, study, config)
            cache[key] = {"seconds": time.perf_counter() - start,
                          **correctness(workdir, stage, dataset, size)}
            fileio.write_json(cache_path, cache)  # atomic: an interrupted study keeps its cache
        return cache[key]

    reference = {}
    for seed in seeds:
        ensure_float(args.root, seed, args.dataset, args.float_epochs,
                     shlex.split(args.float_flags))
        key = f"{seed}|float"
        if key not in cache:
            cache[key] = correctness(os.path.join(args.root, f"seed{seed}"), "float",
                                     dataset, size)
        reference[seed] = cache[key]
    rows = []
    for config in configs:
        cells, changes = [], []
        for seed in seeds:
            result = measured(seed, args.study, config)
            ref = (measured(seed, args.study, baseline_config(config))
                   if args.study == "distill" else reference[seed])
            paired = stats.paired_drop(ref["test"][1], result["test"][1])
            change = (-paired.drop * 100 + 0.0, -paired.high * 100 + 0.0,
                      -paired.low * 100 + 0.0)
            changes.append(change[0])
            cells.append(f"{result['test'][0]:.4f} {change[0]:+.2f} [{change[1]:+.2f}, "
                         f"{change[2]:+.2f}]{'≈' if paired.within_noise else ''} "
                         f"(val {result['validation'][0]:.3f})")
            print(f"seed {seed} {args.study} {config}: {cells[-1]}, "
                  f"{result['seconds']:.0f} s", flush=True)
        rows.append((config, cells, sum(changes) / len(changes)))
    what = "the baseline student" if args.study == "distill" else "the float model"
    print()
    print(f"{args.study} on {args.dataset}, float {args.float_epochs} epochs: test accuracy, "
          f"change vs {what} in points [95% paired interval] (≈ within noise), validation "
          f"accuracy")
    print()
    print("| config | " + " | ".join(f"seed {s}" for s in seeds) + " | mean change |")
    print("|---|" + "---|" * len(seeds) + "---:|")
    for config, cells, mean in rows:
        print(f"| {config} | " + " | ".join(cells) + f" | {mean:+.2f} |")
    floats = " / ".join(f"{reference[s]['test'][0]:.4f}" for s in seeds)
    print(f"\nfloat model test accuracy, seeds {args.seeds}: {floats}")


if __name__ == "__main__":
    main()
