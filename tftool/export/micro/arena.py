"""The tensor arena a model needs in TensorFlow Lite Micro, measured: smallest_arena (the
smallest with which TFLM allocates and invokes), arena_with_margin (that plus MARGIN, whole
KiB), arena_used_bytes (what TFLM's RecordingMicroAllocator reports as used) and footprint
(the report row: flash, arena, ops, fits the budget, message).

Arena figures come from the `tflite-micro` Python interpreter (reference kernels, 64-bit host).
On a board they differ: pointers in TFLM's per-tensor/per-node structs are 4 bytes on
Cortex-M/ESP32, not 8 (the host figure is larger), while optimized kernels (CMSIS-NN, ESP-NN) may
request scratch buffers the reference kernels do not (the board needs more). MARGIN covers the
small differences; confirm on the board with MicroInterpreter::arena_used_bytes().
"""
import functools
import math
import os
import re
import subprocess
import sys
import tempfile

from tftool import UserError
from tftool.export.micro.model import _model, ops

# Extra arena on top of the measured smallest size (fraction), then rounded up to ARENA_ROUNDING
# bytes. Why 10 %: the host measurement is already exact for the pinned TFLM and larger than
# a 32-bit board needs for TFLM's own structs (8-byte pointers here), so the margin is for what
# the host cannot see: another TFLM version on the board, and kernels that ask for a little
# scratch. Measured for scale: digits small_cnn width 8 needs 3984 B (int8 I/O) and 4368 B
# (uint8 I/O), 4.6 % and 7.9 % above the 3808 B / 4048 B the recording allocator reports as
# used. Optimized kernels with large im2col scratch (CMSIS-NN, ESP-NN) can need more than 10 %:
# check arena_used_bytes() on the board. Whole KiB: what firmware writes as
# `constexpr int kTensorArenaSize = N * 1024;`.
MARGIN = 0.10
ARENA_ROUNDING = 1024

# Seconds one TFLM probe (a fresh Python process) may take; an 8x8 CNN takes < 1 s.
PROBE_TIMEOUT_S = 120
# Largest arena tried before giving up: 16 MiB is beyond every MCU's SRAM+PSRAM we target.
MAX_ARENA_BYTES = 16 * 1024 * 1024


# The probe runs in a child process because the tflite_micro interpreter does not always fail
# cleanly on a too-small arena: with a few hundred bytes it segfaults (RecordingMicroAllocator
# ::Create returns null and the wrapper goes on), which would kill the caller. The child builds
# the interpreter with `arena_size`, invokes once on zeros of every input's dtype and shape,
# prints "ok" on stdout, and lets the recording allocator print its figures on stderr.
_PROBE = r"""
import sys
import numpy as np
from tflite_micro import runtime
path, arena_size, num_inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    model = f.read()
interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
for i in range(num_inputs):
    details = interpreter.get_input_details(i)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), i)
interpreter.invoke()
sys.stderr.flush()
interpreter.print_allocations()
print("ok", flush=True)
"""
_USED = re.compile(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes")


def _require_tflm():
    """Raises UserError unless the tflite-micro package (setup.cfg pins it) is importable."""
    try:
        import tflite_micro  # noqa: F401
    except ImportError as e:
        raise UserError(f"TensorFlow Lite Micro's Python package is missing ({e}); install "
                        f"tftool's dependencies again: pip install -e .") from e


class _Prober:
    """Runs TFLM on one model with given arena sizes, each in a fresh Python process."""

    def __init__(self, tflite_bytes):
        _require_tflm()
        model = _model(tflite_bytes)
        self.num_inputs = model.Subgraphs(0).InputsLength()
        self._dir = tempfile.TemporaryDirectory(prefix="tftool_micro_")
        self.path = os.path.join(self._dir.name, "model.tflite")
        with open(self.path, "wb") as f:
            f.write(bytes(tflite_bytes))
        self.probes = 0
        self.last_error = ""

    def close(self):
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __call__(self, arena_size):
        """(works: bool, used_bytes: int or None) for one arena size in bytes."""
        self.probes += 1
        try:
            result = subprocess.run(
                [sys.executable, "-c", _PROBE, self.path, str(arena_size), str(self.num_inputs)],
                capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"TensorFlow Lite Micro took over {PROBE_TIMEOUT_S} s to run the "
                            f"model once with a {arena_size}-byte arena; is the machine "
                            f"overloaded?") from None
        works = result.returncode == 0 and result.stdout.strip() == "ok"
        if not works:
            lines = [l for l in result.stderr.splitlines() if l.strip()]
            self.last_error = lines[-1] if lines else f"exit status {result.returncode}"
            return False, None
        used = _USED.search(result.stderr)
        return True, int(used.group(1)) if used else None


@functools.lru_cache(maxsize=16)
def _measure(tflite_bytes):
    """(smallest arena bytes, recorded used bytes, probes run); see `smallest_arena`.

    Cached per model (bytes): the figures depend only on the flatbuffer and the installed
    tflite-micro, and `footprint` after `smallest_arena` should not probe 10-20 times again.
    """
    ops(tflite_bytes)  # an op TFLM lacks would make every arena size fail: say so first
    with _Prober(tflite_bytes) as probe:
        # 1. A size that works: TFLM's own default guess (10x the model), at least 64 KiB,
        #    doubled until it works.
        hi = max(64 * 1024, 10 * len(tflite_bytes))
        while True:
            works, used = probe(hi)
            if works:
                break
            if hi >= MAX_ARENA_BYTES:
                raise UserError(f"TensorFlow Lite Micro cannot run this model with up to "
                                f"{MAX_ARENA_BYTES // 1024} KiB of arena ({probe.last_error})")
            hi = min(2 * hi, MAX_ARENA_BYTES)
        # 2. A size that fails: just below what the recording allocator used (it did hold that
        #    much at once), checked; 0 if it unexpectedly works.
        lo = 0
        if used and used - 1 < hi:
            if probe(used - 1)[0]:
                hi = used - 1
            else:
                lo = used - 1
                # 3. Gallop up from `used` (the smallest is usually a few % above it) so that
                #    the bisection range is small: +1/16, +1/8, +1/4, ... until one works.
                step = max(64, used // 16)
                while lo + step < hi:
                    if probe(lo + step)[0]:
                        hi = lo + step
                        break
                    lo += step
                    step *= 2
        # 4. Bisection on whole bytes: `lo` fails, `hi` works; at most log2(16 MiB) = 24 probes.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if probe(mid)[0]:
                hi = mid
            else:
                lo = mid
        return hi, used, probe.probes


def smallest_arena(tflite_bytes):
    """The smallest tensor arena, in bytes, with which TFLM allocates and invokes the model.

    Measured with the tflite-micro Python interpreter (`runtime.Interpreter.from_bytes(...,
    arena_size=n)`, reference kernels, RecordingMicroAllocator, 64-bit host): one invoke on
    zero inputs per candidate size, each in a fresh process. A size that works is found by
    doubling from max(64 KiB, 10x the model); then bisection on whole bytes between it and a
    size that fails (just under the recording allocator's used bytes). About 10-20 probes of
    ~0.3 s each; assumes, as TFLM's deterministic memory planner gives, that any larger arena
    works too. Cached per model bytes within the process.
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes) whose ops TFLM has.
    Returns:
      int: bytes; size 1 less fails. Not the figure to ship: use `arena_with_margin`.
    Raises:
      UserError: not a .tflite flatbuffer, an op TFLM lacks, or no arena up to
        MAX_ARENA_BYTES works (TFLM's last error line is quoted).
    """
    return _measure(bytes(tflite_bytes))[0]


def arena_with_margin(arena_bytes, margin=MARGIN, rounding=ARENA_ROUNDING):
    """The arena to ship: `arena_bytes` plus `margin`, rounded up to a multiple of `rounding`.

    Default: +10 %, rounded up to whole KiB (see MARGIN for why). Example: 3984 -> 5120.
    Args:
      arena_bytes: int, the measured smallest arena (`smallest_arena`), bytes.
      margin: fraction ≥ 0 added.
      rounding: int ≥ 1, bytes.
    Returns:
      int bytes.
    Raises:
      ValueError: a negative size or margin, or rounding < 1.
    """
    if arena_bytes < 0 or margin < 0 or rounding < 1:
        raise ValueError(f"arena_with_margin({arena_bytes}, margin={margin}, "
                         f"rounding={rounding}): need arena ≥ 0, margin ≥ 0, rounding ≥ 1")
    return int(math.ceil(arena_bytes * (1 + margin) / rounding)) * rounding


def arena_used_bytes(tflite_bytes, arena_size):
    """Bytes of the arena TFLM's RecordingMicroAllocator reports as used after one invoke.

    The same figure as MicroInterpreter::arena_used_bytes() (head + tail of the arena). The
    Python runtime does not return it, so it is read from the allocator's PrintAllocations()
    text ("Arena allocation total N bytes"). It is *smaller* than `smallest_arena` (the memory
    planner also needs scratch while it plans), so it is reported, not used for sizing.
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes).
      arena_size: int bytes to run with (must work).
    Returns:
      int bytes.
    Raises:
      UserError: the model does not run with `arena_size`, or TFLM printed no figure (a
        tflite-micro whose PrintAllocations format differs from the pinned one).
    """
    with _Prober(tflite_bytes) as probe:
        works, used = probe(arena_size)
        if not works:
            raise UserError(f"TensorFlow Lite Micro cannot run the model with a "
                            f"{arena_size}-byte arena ({probe.last_error})")
    if used is None:
        raise UserError("tflite-micro printed no 'Arena allocation total' line; is it the "
                        "version pinned in setup.cfg?")
    return used


def footprint(tflite_bytes, micro_flash_kb=None, micro_ram_kb=None, name="model"):
    """The microcontroller row of the report for one variant, measured.

    flash_bytes is the model array only (the TFLM runtime and kernels' code, typically tens of
    KiB, is not counted); arena_bytes is `arena_with_margin(smallest_arena(...))`, the figure
    to ship as kTensorArenaSize, checked to run; RAM is compared with arena_bytes only (the
    application's own stack and buffers are not counted).
    Args:
      tflite_bytes: a .tflite flatbuffer (bytes).
      micro_flash_kb / micro_ram_kb: budgets in KiB (1024 bytes); None = no budget.
      name: the variant's name, used in the message.
    Returns:
      dict: flash_bytes, arena_bytes, arena_smallest_bytes, arena_used_bytes (recording
      allocator), ops (sorted BuiltinOperator names), fits (bool: within both budgets),
      message (None when it fits, else one line naming the figures and budgets).
    Raises:
      ValueError: a negative budget.
      UserError: see `smallest_arena`.
    """
    for flag, value in (("micro_flash_kb", micro_flash_kb), ("micro_ram_kb", micro_ram_kb)):
        if value is not None and value < 0:
            raise ValueError(f"{flag}={value}: a budget is KiB ≥ 0, or None for no budget")
    names = ops(tflite_bytes)
    smallest, _, _ = _measure(bytes(tflite_bytes))
    arena = arena_with_margin(smallest)
    used = arena_used_bytes(tflite_bytes, arena)  # also checks that the shipped size runs
    flash = len(tflite_bytes)
    over = []
    if micro_flash_kb is not None and flash > micro_flash_kb * 1024:
        over.append(f"model {flash / 1024:.1f} KiB > flash budget {micro_flash_kb} KiB")
    if micro_ram_kb is not None and arena > micro_ram_kb * 1024:
        over.append(f"tensor arena {arena / 1024:.1f} KiB (smallest {smallest} B "
                    f"+ {MARGIN:.0%}) > RAM budget {micro_ram_kb} KiB")
    message = f"{name} does not fit the microcontroller: {'; '.join(over)}" if over else None
    return {"flash_bytes": flash, "arena_bytes": arena, "arena_smallest_bytes": smallest,
            "arena_used_bytes": used, "ops": names, "fits": not over, "message": message}
