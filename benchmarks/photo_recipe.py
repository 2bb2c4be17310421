"""The photo recipe's ablation: tftool-train with one piece of the photo preset changed at a
time, over seeds, each run compared image by image with the reference configuration.

Usage (from the repo root; `make bench-photo` runs the default grid on the development photos,
`tar -xf ../shared/data/cifar10-dev.tar -C /tmp` first):
  PYTHONPATH=. .venv/bin/python benchmarks/photo_recipe.py \
      --dataset=folder:/tmp/cifar10-dev --seeds=0 \
      --configs="preset=photo;preset=photo label_smoothing=0;preset=digits"

A config is "key=value" pairs separated by spaces, each a tftool-train flag (preset=photo
epochs=12 ...); "" or "default" is tftool-train with no flag at all (the preset auto picks).
The first config is the reference: every other row gives its change in test points against it,
with the 95% paired interval (tftool.stats.paired_drop; ≈ within noise), for each seed. Each
row also gives the validation accuracy (the split a default is chosen on), the training
seconds (the fit alone, from metrics.json's per-epoch history: no data loading, evaluation or
BN re-estimation) and the wall seconds of the whole tftool-train run, and the images/s and
GMAC/s of training.

Runs are cached in ROOT/results.json (key: dataset, seed, config), so an interrupted sweep
resumes and a new config costs one run. Results: docs/photo_recipe.md.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compress_defaults as common  # noqa: E402  (cli, parse, slug, correctness)

DEFAULT_CONFIGS = [
    "preset=photo",
    "preset=digits",
    "preset=digits epochs=15",
    "preset=photo augment=false",
    "preset=photo hflip=false",
    "preset=photo label_smoothing=0",
    "preset=photo learning_rate=0.1",
    "preset=photo learning_rate=0.4",
    "preset=photo weight_decay=5e-4",
    "preset=photo use_ema=true",
    "preset=photo per_replica_batch_size=512 learning_rate=0.4",
    "preset=photo width=32",
    "preset=photo epochs=8",
    "preset=photo epochs=12",
    "preset=photo epochs=16",
    "preset=photo optimizer=adam learning_rate=3e-3 weight_decay=0",
]


def run(root, dataset, loaded, seed, config):
    """Trains one config (tftool-train in a subprocess, as make runs it) into its own
    workdir and scores it on `loaded` (the data.Dataset of `dataset`, loaded once per sweep);
    returns {wall_seconds, fit_seconds, images_per_second, gmacs_per_second,
    test/validation: (accuracy, [per-image correct])}."""
    from tftool import data, fileio

    slug = "default" if config in ("", "default") else common.slug(config)
    workdir = os.path.join(root, common.slug(dataset.replace("/", "_").replace(":", "_")),
                           f"seed{seed}", slug)
    flags = {} if slug == "default" else common.parse(config)
    args = [f"--workdir={workdir}", f"--dataset={dataset}", f"--seed={seed}"] + [
        f"--{k}={v}" for k, v in flags.items()]
    start = time.perf_counter()
    common.cli("train", *args, log=workdir + ".log")
    wall = time.perf_counter() - start
    metrics = fileio.read_json_object(os.path.join(workdir, "float", "metrics.json"))
    history = metrics.get("history", {})
    ips = history.get("images_per_second", [])
    gmacs = history.get("gmacs_per_second", [])
    num_train = metrics.get("global_batch_size", 0) * metrics.get("steps_per_epoch", 0)
    fit_seconds = sum(num_train / v for v in ips if v) if ips else None
    size = data.resolve_image_size(loaded, None)
    return {"wall_seconds": wall, "fit_seconds": fit_seconds,
            "images_per_second": sorted(ips)[len(ips) // 2] if ips else None,
            "gmacs_per_second": sorted(gmacs)[len(gmacs) // 2] if gmacs else None,
            "preset": metrics.get("preset"), "model": metrics.get("model"),
            **common.correctness(workdir, "float", loaded, size)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="folder:/tmp/cifar10-dev")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--configs", default=None,
                        help="';'-separated configs, the first the reference (default: "
                        "DEFAULT_CONFIGS)")
    parser.add_argument("--root", default="/tmp/tftool_photo_recipe")
    args = parser.parse_args()

    from tftool import data, fileio, stats

    seeds = [int(s) for s in args.seeds.split(",")]
    configs = [c.strip() for c in (args.configs.split(";") if args.configs is not None
                                   else DEFAULT_CONFIGS)]
    os.makedirs(args.root, exist_ok=True)
    cache_path = os.path.join(args.root, "results.json")
    cache = fileio.read_json_object(cache_path) or {}
    loaded = []  # the data set, read (and its images checked) once, when a run needs it

    def measured(seed, config):
        key = f"{args.dataset}|{seed}|{config or 'default'}"
        if key not in cache:
            if not loaded:
                loaded.append(data.load(args.dataset))
            cache[key] = run(args.root, args.dataset, loaded[0], seed, config)
            fileio.write_json(cache_path, cache)  # atomic: an interrupted sweep keeps its cache
        return cache[key]

    rows = []
    for config in configs:
        cells = []
        for seed in seeds:
            result = measured(seed, config)
            ref = measured(seed, configs[0])
            test, (n_correct, n) = result["test"][0], (sum(result["test"][1]),
                                                      len(result["test"][1]))
            low, high = stats.wilson(n_correct, n)
            cell = f"{test:.4f} [{low:.3f}, {high:.3f}]"
            if config != configs[0]:
                paired = stats.paired_drop(ref["test"][1], result["test"][1])
                cell += (f" {-paired.drop * 100 + 0.0:+.2f} [{-paired.high * 100 + 0.0:+.2f}, "
                         f"{-paired.low * 100 + 0.0:+.2f}]{'≈' if paired.within_noise else ''}")
            fit = result["fit_seconds"]
            cell += (f", val {result['validation'][0]:.4f}, fit {fit:.0f} s"
                     if fit else f", val {result['validation'][0]:.4f}")
            cell += f", wall {result['wall_seconds']:.0f} s"
            if result.get("images_per_second"):
                cell += f", {result['images_per_second']:,.0f} img/s"
            if result.get("gmacs_per_second"):
                cell += f", {result['gmacs_per_second']:.0f} GMAC/s"
            cells.append(cell)
            print(f"seed {seed} {config or 'default'}: {cell}", flush=True)
        rows.append((config or "default", cells))
    print()
    print(f"tftool-train on {args.dataset}: test accuracy [95% Wilson], change vs "
          f"`{configs[0] or 'default'}` in points [95% paired interval] (≈ within noise), "
          f"validation accuracy, fit and wall seconds, median training throughput")
    print()
    print("| config | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    for config, cells in rows:
        print(f"| {config} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
