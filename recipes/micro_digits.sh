#!/bin/sh
# A small_cnn at width 8 on digits, for a microcontroller running TensorFlow Lite Micro (TFLM):
#   sh recipes/micro_digits.sh [WORKDIR] [EXPORT_DIR]        (defaults: workdir_micro, exported)
# Its own WORKDIR: the default workdir/ holds the width-32 model, and the config guard refuses
# to mix the two. About 1 minute on a 2-core CPU (training 33 s, measuring 15 s).
#
# Expected (measured 2026-11-21 on a shared 2-core x86-64 CPU: `python -m tftool.cli.train
# --workdir=W --width=8` (30 epochs, the default), then `python recipes/micro_digits_measure.py W`,
# which converts to full-integer int8 with convert.to_tflite and calls tftool/export/micro.py's
# footprint and compare_with_litert; tflite-micro 0.dev20261023182759, ai-edge-litert 2.3.0):
#
# | variant     | accuracy TFLM / LiteRT | flash (model array) | arena: smallest | used (recorded) | shipped (+10 %, KiB) |
# |-------------|------------------------|--------------------:|----------------:|----------------:|---------------------:|
# | digits_int8 | 0.9749 / 0.9749        | 9944 B (9.7 KiB)    |          3984 B |          3808 B |                5 KiB |
#
# Float Keras model: 0.9749. TFLM and LiteRT agree on 359/359 test images (top-1); raw int8
# outputs differ by at most 1 quantization step. Ops: CONV_2D, FULLY_CONNECTED, MAX_POOL_2D,
# MEAN (MicroMutableOpResolver<4>). With uint8 input/output instead of int8 (where convert.py
# is heading) the converter adds QUANTIZE at both ends: 10320 B flash, smallest arena 4368 B,
# used 4048 B, shipped 5 KiB, same accuracy (measured the same way, converter set to uint8).
#
# "smallest" is found by bisection with the tflite-micro Python interpreter (reference kernels,
# 64-bit host) and 1 byte less fails; "used" is its RecordingMicroAllocator's figure, which is
# smaller because the memory planner needs scratch while planning. Flash counts the model array
# only, not the TFLM runtime and kernels' code. Check the arena on the board with
# MicroInterpreter::arena_used_bytes(): optimized kernels (CMSIS-NN, ESP-NN) may need more.
set -e
W=${1:-workdir_micro}
E=${2:-exported}
make train WORKDIR="$W" TRAIN_FLAGS=--width=8                  # W/float, width 8
# `make micro` (tftool-export --micro: C arrays, op resolver header, footprint in the report)
# is wired by the integration of issue 12; run it once the Makefile has it.
if grep -q '^micro:' Makefile; then make micro WORKDIR="$W" EXPORT_DIR="$E"; fi
"${VENV:-.venv}"/bin/python recipes/micro_digits_measure.py "$W"   # prints the figures above
