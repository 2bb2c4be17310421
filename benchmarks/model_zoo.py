"""Every model builder on the same real images: parameters, MACs, int8 file size, TFLite Micro
arena where it fits a microcontroller, LiteRT p50 at 1 thread, and float vs int8 accuracy.

Usage (from the repo root; minutes per model on 2 cores):
  python benchmarks/image_folder.py digits /tmp/tftool_zoo32 --size=32 --copies=2
  PYTHONPATH=. .venv/bin/python benchmarks/model_zoo.py --dataset=folder:/tmp/tftool_zoo32 \
      --epochs=10
Each builder trains with tftool-train's defaults (--epochs given) into ROOT/<model>/, then
tftool-export --variants=float32,int8 and tftool-export --micro when the int8 file is under
--micro_flash_kb (TFLM's arena and agreement with LiteRT), and tftool-benchmark at 1 thread,
batch 1, XNNPACK on. It prints one Markdown table (README's model table).
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDERS = [  # (name, model flags)
    ("small_cnn", ["--model=small_cnn"]),
    ("resnet8", ["--model=resnet8"]),
    ("mobilenet_v2 α0.35", ["--model=mobilenet_v2", "--alpha=0.35"]),
    ("mobilenet_v3_small α0.75 minimalistic", ["--model=mobilenet_v3_small", "--alpha=0.75",
                                               "--minimalistic"]),
    ("mobilenet_v3_small α1.0", ["--model=mobilenet_v3_small"]),
    ("mobilenet_v3_large α0.75 minimalistic", ["--model=mobilenet_v3_large", "--alpha=0.75",
                                               "--minimalistic"]),
    ("efficientnet_lite0", ["--model=efficientnet_lite0"]),
]


def cli(tool, *args):
    proc = subprocess.run([sys.executable, "-m", "tftool", tool, *args], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"tftool-{tool} {' '.join(args)} failed:\n"
                           + "\n".join((proc.stdout + proc.stderr).splitlines()[-6:]))
    return proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--root", default="/tmp/tftool_model_zoo")
    parser.add_argument("--micro_flash_kb", type=float, default=1024)
    parser.add_argument("--only", default=None, help="comma-separated names to run")
    args = parser.parse_args()

    import tftool  # noqa: F401
    from tftool import fileio, models

    rows = []
    for label, flags in BUILDERS:
        if args.only and label.split()[0] not in args.only.split(","):
            continue
        work = os.path.join(args.root, label.replace(" ", "_").replace("α", "a"))
        export = os.path.join(work, "exported")
        common = [f"--workdir={work}"]
        cli("train", *common, f"--dataset={args.dataset}", *flags, f"--epochs={args.epochs}")
        cli("export", *common, f"--export_dir={export}", "--variants=float32,int8",
            "--max_accuracy_drop=1")
        name = os.path.basename(args.dataset.split(":", 1)[-1].rstrip("/")) + "_" + \
            flags[0].split("=")[1]
        card = json.load(open(os.path.join(export, f"{name}_int8.json")))
        size = os.path.getsize(os.path.join(export, f"{name}_int8.tflite"))
        arena = None
        if size <= args.micro_flash_kb * 1024:
            cli("export", *common, f"--export_dir={export}", "--variants=int8", "--micro",
                "--max_accuracy_drop=1")
            micro = json.load(open(os.path.join(export, f"{name}_int8.json"))).get("micro")
            arena = micro["arena_bytes"] if micro else None
        cli("benchmark", *common, f"--export_dir={export}", "--threads=1", "--batch_sizes=1",
            "--xnnpack=on")
        bench = {r["variant"]: r for r in json.load(open(os.path.join(export,
                                                                       "benchmark.json")))
                 if r["format"] == "tflite"}
        model = fileio.load_model(os.path.join(work, "float", "model.h5"))
        metrics = json.load(open(os.path.join(work, "float", "metrics.json")))
        rows.append((label, model.count_params(), models.macs(model), size, arena,
                     bench["float32"]["latency_ms_p50"], bench["int8"]["latency_ms_p50"],
                     metrics["test_accuracy"], card["test_accuracy"],
                     card["test_accuracy_interval"]))
        print(f"{label}: done", flush=True)
    print()
    print(f"{args.dataset}, {args.epochs} epochs each (tftool-train defaults otherwise); "
          f"LiteRT p50 at 1 thread, batch 1, XNNPACK on")
    print()
    print("| model | params | MACs | int8 KiB | TFLM arena KiB | p50 float32 ms | "
          "p50 int8 ms | accuracy float (Keras) | accuracy int8 [95%] |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, params, mac, size, arena, p32, p8, acc, acc8, interval in rows:
        print(f"| {label} | {params:,} | {mac / 1e6:.1f} M | {size / 1024:.1f} | "
              f"{'–' if arena is None else f'{arena / 1024:.1f}'} | {p32:.3f} | {p8:.3f} | "
              f"{acc:.4f} | {acc8:.4f} [{interval[0]:.3f}, {interval[1]:.3f}] |")


if __name__ == "__main__":
    main()
