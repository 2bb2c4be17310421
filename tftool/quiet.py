"""A quiet terminal: TensorFlow's start-up chatter hidden, real errors still shown.

TensorFlow 2.21 writes, from C++, before its logging is initialised, a block of lines that
TF_CPP_MIN_LOG_LEVEL does not silence (tensorflow/tensorflow#100442): "All log messages before
absl::InitializeLog() ...", the oneDNN notice, "Could not find cuda drivers" (twice) and, on a
machine without a GPU, an *error* line "failed call to cuInit". LiteRT adds "INFO: Created
TensorFlow Lite XNNPACK delegate for CPU." and the converter "fully_quantize: 0, ...". Every
process printed about ten of them.

`filter_stderr` routes the process's stderr (file descriptor 2, so C++ writes are caught too)
through a small filter *process* that drops the lines of NOISE and copies every other line to
the real stderr as it arrives. A process rather than a thread: if this process crashes, the
filter still drains what was written (a fatal error's last words are not lost). Child
processes inherit the filtered stderr. `-v 0` / `--verbosity=0` (or higher) on the command
line turns all of this off (tftool/launch.py).

Progress bars (tftool/progress.py) write straight to the terminal (`terminal()`): the filter
passes whole lines, and a bar redraws one line in place.
"""
import atexit
import os
import re
import subprocess
import sys

# Lines dropped from stderr. Native info/warning lines written before absl's logging starts
# carry the date field "0000 00:00:" (after it starts, TF_CPP_MIN_LOG_LEVEL=2 hides them).
NOISE = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"^[IW]0000 00:00:",
    r"^E0000 00:00:\S+\s+\d+ cuda_[a-z_]+\.cc:\d+\] (failed call to cuInit|Unable to register)",
    r"^INFO: Created TensorFlow Lite (XNNPACK )?delegate for CPU\.",
    r"^INFO: Initialized TensorFlow Lite runtime\.",
    r"^fully_quantize: \d+, inference_type: \d+",
)

_FILTER = r"""
import os, re, sys
noise = re.compile(sys.argv[1].encode())
out = sys.stdout.buffer
buffer = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    buffer += chunk
    *lines, buffer = buffer.split(b"\n")
    for line in lines:
        if not noise.search(line):
            out.write(line + b"\n")
    out.flush()
if buffer and not noise.search(buffer):
    out.write(buffer)
    out.flush()
"""

_state = {}


def terminal():
    """The stream a progress bar should draw on: the real stderr (before filter_stderr)."""
    return _state.get("terminal", sys.stderr)


def terminal_is_tty():
    """Whether the real stderr is a terminal."""
    try:
        return terminal().isatty()
    except (AttributeError, ValueError):
        return False


def filter_stderr(patterns=NOISE):
    """Routes this process's fd 2 through a filter process that drops lines matching
    `patterns` (regular expressions); idempotent. At exit the pipe is closed and the filter
    given up to 5 s to write what is left, so the last error line comes before the shell's
    prompt. Returns the filter's Popen (None if it was already installed).
    Raises OSError when no pipe or process can be made (callers go on unfiltered)."""
    if "process" in _state:
        return None
    sys.stderr.flush()
    real = os.dup(2)
    # Its own session: Ctrl-C on the terminal reaches this process, not the filter, which
    # then still passes the last lines (the KeyboardInterrupt, a resume hint) until EOF.
    process = subprocess.Popen([sys.executable, "-c", _FILTER, "|".join(patterns)],
                               stdin=subprocess.PIPE, stdout=real, close_fds=True,
                               start_new_session=True)
    os.dup2(process.stdin.fileno(), 2)
    process.stdin.close()  # fd 2 is now the pipe's only write end in this process
    _state.update(process=process, real=real,
                  terminal=os.fdopen(os.dup(real), "w", buffering=1))
    atexit.register(_close)
    return process


def _close():
    process = _state.get("process")
    if process is None:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_state["real"], 2)  # drops the pipe's write end: the filter sees EOF
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
    _state.pop("process", None)


def is_noise(line, patterns=NOISE):
    """Whether `line` is one the filter drops (for tests and log checks)."""
    return re.search("|".join(patterns), line) is not None
