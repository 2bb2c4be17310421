#!/usr/bin/env bash
# The full pipeline on one VM with several NVIDIA GPUs: MirroredStrategy over all of them.
#
#   recipes/multi_gpu_vm.sh                                  # cifar10 + mobilenet_v2
#   FLAGFILE=recipes/fashion_mnist.flags recipes/multi_gpu_vm.sh
#
# Expected: see the first lines of the flagfile (cifar10: float test accuracy ≈ 0.85-0.88
# from scratch). The script prints images/s for a short run with and without
# --mixed_precision first, so the speed-up on this VM's GPUs is on record
# (WORKDIR/speed_{fp32,mixed}/float/metrics.json, "history.images_per_second").
#
# Steps: 1) nvidia-smi must list at least one GPU (driver installed); 2) install the project
# with the CUDA build of the pinned TensorFlow (`tensorflow[and-cuda]`, which pulls the
# matching CUDA/cuDNN wheels; no system CUDA needed); 3) check TensorFlow sees the GPUs;
# 4) train (mixed_float16, linear LR scaling with the global batch), QAT, export, benchmark.
#
# Mixed precision is used for the float training only: QAT fine-tuning inserts float32
# fake-quant ops, and every saved/exported model is float32 (int8 after conversion) anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

FLAGFILE=${FLAGFILE:-recipes/cifar10.flags}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
SPEED_EPOCHS=${SPEED_EPOCHS:-2}

# 1) GPUs and driver.
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L | grep -q "^GPU "; then
  echo "multi_gpu_vm.sh: error: nvidia-smi lists no GPU; install the NVIDIA driver first" >&2
  exit 2
fi
nvidia-smi -L
NUM_GPUS=$(nvidia-smi -L | grep -c "^GPU ")

# 2) The GPU build of the exact TensorFlow version setup.cfg pins.
TF_VERSION=$(sed -n 's/^ *tensorflow==\([0-9.]*\).*/\1/p' setup.cfg)
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e . "tensorflow[and-cuda]==$TF_VERSION"
touch "$VENV/.installed"  # the Makefile's install marker: `make` will not reinstall over it

# 3) TensorFlow must see every GPU, or MirroredStrategy would silently use fewer.
SEEN=$("$VENV/bin/python" -c "import tftool, tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))")
if [ "$SEEN" != "$NUM_GPUS" ]; then
  echo "multi_gpu_vm.sh: error: TensorFlow sees $SEEN of $NUM_GPUS GPUs; check the driver/CUDA versions" >&2
  exit 2
fi

WORKDIR=$(sed -n 's/^--workdir=//p' "$FLAGFILE")
BIN="$VENV/bin"

# Throughput with and without mixed precision (short runs, own workdirs).
for mode in fp32 mixed; do
  extra="--nomixed_precision"; [ "$mode" = mixed ] && extra="--mixed_precision"
  "$BIN/tftool-train" --flagfile="$FLAGFILE" --workdir="$WORKDIR/speed_$mode" \
    --epochs="$SPEED_EPOCHS" --strategy=mirrored --scale_lr $extra --overwrite
done
"$VENV/bin/python" - "$WORKDIR" <<'PY'
import json, sys
for mode in ("fp32", "mixed"):
    m = json.load(open(f"{sys.argv[1]}/speed_{mode}/float/metrics.json"))
    ips = m["history"]["images_per_second"][-1]  # last epoch: after tf.function tracing
    print(f"{mode}: {ips:.0f} images/s on {m['num_replicas']} GPU(s), global batch {m['global_batch_size']}")
PY

# 4) The full pipeline: MirroredStrategy over all GPUs (--strategy=mirrored), mixed precision,
#    learning rate × global batch / 64 (--scale_lr; warm-up comes from the flagfile).
"$BIN/tftool-train" --flagfile="$FLAGFILE" --strategy=mirrored --mixed_precision --scale_lr
"$BIN/tftool-quantize" --workdir="$WORKDIR" --strategy=mirrored
"$BIN/tftool-export" --workdir="$WORKDIR" --export_dir="$WORKDIR/exported"
"$BIN/tftool-benchmark" --workdir="$WORKDIR" --export_dir="$WORKDIR/exported"
