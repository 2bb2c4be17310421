#!/bin/sh
# Every compression stage on digits, step by step (what `make all` runs, minus skipping):
#   sh recipes/compress_all.sh [WORKDIR] [EXPORT_DIR]      (defaults: workdir, exported)
# About 3 minutes on a 2-core CPU. Expected table (exported/benchmark.md, 2 threads, quiet
# machine; latencies vary with the machine and its load, accuracies are reproducible for the
# default seed):
#
# | variant               | accuracy | size KiB | gzip KiB | p50 ms | sparsity |
# |-----------------------|---------:|---------:|---------:|-------:|---------:|
# | float (keras)         |   0.9889 |    309.8 |    244.1 | 0.5377 |        – |
# | int8 (the teacher)    |   0.9889 |     73.4 |     64.2 | 0.0081 |     0.01 |
# | qat_int8              |   0.9944 |     74.0 |     64.2 | 0.0081 |     0.01 |
# | pruned_int8           |   0.9889 |     73.4 |     25.9 | 0.0080 |     0.79 |
# | pqat_int8             |   0.9944 |     74.0 |     26.0 | 0.0081 |     0.79 |
# | student_int8          |   0.9833 |      9.6 |      6.3 | 0.0036 |     0.01 |
# | student_baseline_int8 |   0.9805 |      9.6 |      6.3 | 0.0036 |     0.01 |
#
# Pruned layers are 0.80 sparse in the .tflite (benchmark.json kernel_sparsity; the sparsity
# column also counts the dense first conv and logits layers). The student (width 8, 4,466
# parameters) is taught by the float model (66,218) and beats the same student trained on the
# labels alone for the same 100 epochs from the same initial weights.
set -e
W=${1:-workdir}
E=${2:-exported}
tftool-train --workdir="$W"                                   # WORKDIR/float
tftool-quantize --workdir="$W"                                # WORKDIR/qat
tftool-prune --workdir="$W" --target_sparsity=0.8             # WORKDIR/pruned
tftool-quantize --workdir="$W" --from=pruned                  # WORKDIR/pqat (zeros kept)
tftool-distill --workdir="$W" --teacher=float --baseline      # WORKDIR/student, student_baseline
tftool-export --workdir="$W" --export_dir="$E"
tftool-benchmark --workdir="$W" --export_dir="$E"
