#!/bin/sh
# A small_cnn at width 8 on digits, for a microcontroller running TensorFlow Lite Micro (TFLM):
#   sh recipes/micro_digits.sh [WORKDIR] [EXPORT_DIR]      (defaults: workdir_micro, exported_micro)
# Its own WORKDIR and EXPORT_DIR: the default workdir/ holds the width-32 model, and the config
# guard refuses to mix the two.
#
# Expected (measured 2026-11-21 on this 2-core x86-64 CPU, ~32 s, by running this script:
# the figures are from exported_micro/digits_small_cnn_int8.json, section "micro"; the float
# model trained under mixed_bfloat16, tftool-train's default for small_cnn on this AVX512_BF16
# CPU; trained in float32 it gave 0.9749 everywhere and the same sizes):
#
# | variant | accuracy Keras / TFLM / LiteRT | flash (model array) | arena: smallest | shipped (header) | ops |
# |---|---|---:|---:|---:|---|
# | int8 (int8 I/O, 1 channel) | 0.9777 / 0.9777 / 0.9777 | 9,952 B (9.7 KiB) | 3,984 B | 5,120 B (5 KiB) | CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, MEAN |
#
# TFLM's top-1 equals LiteRT's on 359/359 test images; raw int8 outputs differ by at most 1
# quantization step. The recording allocator reports 3,808 B used. The .cc compiles with
# `g++ -std=c++17 -c`; the op resolver is a MicroMutableOpResolver<4>.
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
