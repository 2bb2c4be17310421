#!/bin/sh
# A small_cnn at width 8 on digits, for a microcontroller running TensorFlow Lite Micro (TFLM):
#   sh recipes/micro_digits.sh [WORKDIR] [EXPORT_DIR]      (defaults: workdir_micro, exported_micro)
# Its own WORKDIR and EXPORT_DIR: the default workdir/ holds the width-32 model, and the config
# guard refuses to mix the two.
#
# Expected (MEASURED_LINE)
#
# TABLE
#
# "arena" is the tensor arena tftool measured in the tflite-micro Python interpreter: the
# smallest that allocates and runs (bisection; 1 byte less fails), + 10 %, rounded up to 1 KiB;
# the header defines it as <name>_tensor_arena_size. Flash counts the model array only, not the
# TFLM runtime and kernels' code. Check the arena on the board with
# MicroInterpreter::arena_used_bytes(): optimized kernels (CMSIS-NN, ESP-NN) may need more.
set -e
W=${1:-workdir_micro}
E=${2:-exported_micro}
make train WORKDIR="$W" EXPORT_DIR="$E" TRAIN_FLAGS=--width=8
make micro WORKDIR="$W" EXPORT_DIR="$E" EXPORT_FLAGS=--variants=int8
ls "$E"/micro
