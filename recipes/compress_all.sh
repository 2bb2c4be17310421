#!/bin/sh
# Every compression stage on digits, step by step (what `make all` runs, minus skipping):
#   sh recipes/compress_all.sh [WORKDIR] [EXPORT_DIR]      (defaults: workdir, exported)
# About 3 minutes on a 2-core CPU. Expected (exported/report.md of `make all` from a fresh
# clone, quiet 2-core AMD EPYC; latencies vary with the machine and its load, and accuracies by
# a test image or two from run to run unless every stage gets --deterministic):
#
# | variant               | accuracy | size KiB | gzip KiB | sparsity | p50 ms @1 thread |
# |-----------------------|---------:|---------:|---------:|---------:|-----------------:|
# | float (Keras)         |   0.9889 |    309.8 |    244.1 |        – |           0.3771 |
# | float32               |   0.9889 |    259.9 |    239.2 |     0.00 |           0.0358 |
# | int8 (the teacher)    |   0.9889 |     73.4 |     64.2 |     0.01 |           0.0107 |
# | qat_int8              |   0.9889 |     74.0 |     64.2 |     0.01 |           0.0107 |
# | pruned_int8           |   0.9916 |     73.4 |     26.0 |     0.79 |           0.0107 |
# | pqat_int8             |   0.9916 |     74.0 |     26.0 |     0.79 |           0.0107 |
# | student_int8          |   0.9889 |     15.3 |     11.4 |     0.01 |           0.0036 |
# | student_baseline_int8 |   0.9805 |     15.3 |     11.4 |     0.01 |           0.0036 |
#
# Pruned layers are 0.80 sparse in the .tflite (benchmark.json kernel_sparsity; the sparsity
# column also counts the dense first conv and logits layers). The student (width 12) is taught
# by the float model (about 7x its parameters) and is compared with the same student trained on
# the labels alone for the same epochs from the same initial weights; on digits the gain is a
# few test images, within run-to-run noise (the student rows above were measured with the old
# distillation defaults T=4, w=0.1, 60 epochs; tftool/optimize/distill.py lists the
# measurements behind today's T=2, w=0.5, the teacher's epochs).
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
