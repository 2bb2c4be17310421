"""Peak memory of `tftool-export` and `tftool-benchmark` as the data set grows.

  PYTHONPATH=. python benchmarks/peak_memory.py [--sizes=1000,8000] [--image_size=160]
  (make bench-memory)

For each size N it writes N random RGB PNGs of IMAGE_SIZE px (benchmarks/image_folder.py,
90% train / 10% test), trains a tiny float model (small_cnn width 4, 1 epoch, no
augmentation; noise images, so --allow_chance_accuracy), exports float32 and int8 (100
calibration images) and benchmarks them with minimal timing, each as its own process, and
reads each process's peak resident set size (ru_maxrss from os.wait4; the benchmark's Keras
latency child process is not included). Goal: peak RSS at the largest N ≤ 1.2× the smallest,
i.e. neither command holds a whole split in memory (DESIGN.md, "Memory").
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.dirname(HERE)

import image_folder  # noqa: E402


def peak_rss(args):
    """Runs `python -m args...` in the repository; returns (peak RSS MiB, seconds)."""
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-5:])
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{tail}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss: KiB on Linux


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,8000")
    parser.add_argument("--image_size", type=int, default=160)
    parser.add_argument("--root", default=None, help="where the folders and workdirs go")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="peak_memory_")
    results = []
    for n in [int(v) for v in args.sizes.split(",")]:
        folder = os.path.join(root, f"images_{n}_{args.image_size}")
        if not os.path.isdir(folder):
            start = time.perf_counter()
            image_folder.random_folder(folder, n, args.image_size)
            print(f"wrote {n} images in {time.perf_counter() - start:.0f} s", flush=True)
        work, exported = os.path.join(root, f"work_{n}"), os.path.join(root, f"exported_{n}")
        common = [f"--workdir={work}", f"--dataset=folder:{folder}"]
        train = peak_rss(["tftool", "train", *common, "--epochs=1", "--model=small_cnn",
                          "--width=4", "--noaugment", "--allow_chance_accuracy",
                          "--lr_schedule=constant", "--overwrite"])
        export = peak_rss(["tftool", "export", *common[:1], f"--export_dir={exported}",
                           "--variants=float32,int8", "--allow_chance_accuracy",
                           "--max_accuracy_drop=1", "--name=m"])
        bench = peak_rss(["tftool", "benchmark", *common[:1], f"--export_dir={exported}",
                          "--name=m", "--threads=1", "--batch_sizes=1", "--xnnpack=on",
                          "--min_runs=5", "--min_seconds=0", "--warmup_runs=1",
                          "--warmup_seconds=0"])
        results.append((n, train, export, bench))
        print(f"{n} images: train {train[0]:.0f} MiB ({train[1]:.0f} s), export "
              f"{export[0]:.0f} MiB ({export[1]:.0f} s), benchmark {bench[0]:.0f} MiB "
              f"({bench[1]:.0f} s)", flush=True)
    print(f"\npeak RSS (MiB) of each process, {args.image_size}x{args.image_size} RGB PNGs")
    print("| images | tftool-train | tftool-export | tftool-benchmark |")
    print("|---:|---:|---:|---:|")
    for n, t, e, b in results:
        print(f"| {n:,} | {t[0]:.0f} | {e[0]:.0f} | {b[0]:.0f} |")
    if len(results) > 1:
        (n0, t0, e0, b0), (n1, t1, e1, b1) = results[0], results[-1]
        print(f"| ratio {n1:,}/{n0:,} | {t1[0] / t0[0]:.2f} | {e1[0] / e0[0]:.2f} | "
              f"{b1[0] / b0[0]:.2f} |")
        print("goal: export and benchmark ratio ≤ 1.2 (train caches the split by design)")


if __name__ == "__main__":
    main()
