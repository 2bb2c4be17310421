""".tflite bytes -> what a TensorFlow Lite Micro (TFLM) firmware needs, with measured figures.

Takes the bytes of any full-integer (int8 or uint8 I/O) or float .tflite flatbuffer, however it
was made, and returns:
  c_source            <name>_model_data.h / .cc: the flatbuffer as an aligned C array
  op_resolver_header  <name>_op_resolver.h: a tflite::MicroMutableOpResolver<N> with exactly
                      the model's N distinct ops
  ops                 the model's builtin op names (UserError for an op TFLM lacks)
  io_details          its input and output as firmware feeds and reads them (dtype, shape,
                      scale, zero point, the formula from an 8-bit pixel, logits or
                      probabilities), read from the flatbuffer
  card_section        the same for the model card's "micro" section, with what differs from
                      the app's .tflite
  smallest_arena      the smallest tensor arena (bytes) with which TFLM allocates and invokes
  arena_with_margin   that size plus MARGIN, rounded up to whole KiB
  arena_used_bytes    what TFLM's RecordingMicroAllocator reports as used
  compare_with_litert TFLM against LiteRT on the same quantized images
  footprint           the report row: flash, arena, ops, fits the budget, message

Follows the TFLM guides "Get started with microcontrollers"
(https://ai.google.dev/edge/litert/microcontrollers/get_started: the model is an `alignas(16)`
C array, ops are registered on a MicroMutableOpResolver, the tensor arena "may need to be
determined by experimentation") and TFLM's memory-management doc, whose RecordingMicroAllocator
reports the arena actually used:
https://github.com/tensorflow/tflite-micro/blob/main/tensorflow/lite/micro/docs/memory_management.md

Modules, one job each; every public name is re-exported here, so `from tftool.export import
micro; micro.footprint(...)` is the way in:
  model.py        the flatbuffer's operators, checked against TFLM_OPS: model_ops, ops
  io_contract.py  io_details, pixel_formula, card_section
  c_writer.py     c_source, op_resolver_header
  arena.py        the arena probe (a child process per size): smallest_arena,
                  arena_with_margin, arena_used_bytes, footprint; why host and board differ
  compare.py      compare_with_litert
The constants here are copies: to patch one (PROBE_TIMEOUT_S) or a helper (_Prober), patch the
module that looks it up (tftool.export.micro.arena).
"""
from tftool.export.micro.arena import (ARENA_ROUNDING, MARGIN, MAX_ARENA_BYTES, PROBE_TIMEOUT_S,
                                       arena_used_bytes, arena_with_margin, footprint,
                                       smallest_arena)
from tftool.export.micro.c_writer import c_source, op_resolver_header
from tftool.export.micro.compare import compare_with_litert
from tftool.export.micro.io_contract import card_section, io_details, pixel_formula
from tftool.export.micro.model import TFLM_OPS, model_ops, ops

