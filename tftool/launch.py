"""The console scripts (tftool-train, ...) and `python -m tftool.<tool>` start here.

This module imports nothing heavy: it quiets the terminal *before* TensorFlow is imported
(tftool/quiet.py: TensorFlow's C++ start-up lines cannot be silenced once it is loaded), then
imports the entry point and runs it. `-v 0` / `--verbosity=0` (absl's flag; 1 for debug)
keeps every line: TensorFlow's C++ INFO logs (TF_CPP_MIN_LOG_LEVEL=0), absl INFO lines and
Python warnings.
"""
import importlib
import os
import re
import sys

TOOLS = ("train", "quantize", "prune", "distill", "cluster", "export", "benchmark", "check",
         "predict", "search", "import_model")


def verbose(argv):
    """Whether the command line asks for absl verbosity ≥ 0 (`-v 0`, `-v=1`, `--verbosity=0`,
    `--verbosity 1`); absl's own default is -1 (warnings) until it parses the flags."""
    for i, arg in enumerate(argv[1:], start=1):
        match = re.fullmatch(r"--?(?:v|verbosity)(?:=(-?\d+))?", arg)
        if not match:
            continue
        value = match.group(1)
        if value is None and i + 1 < len(argv):
            value = argv[i + 1]
        try:
            return int(value) >= 0
        except (TypeError, ValueError):
            return False
    return False


def main(tool, argv=None):
    """Runs tftool.cli.<tool>.cli_main with a quiet terminal unless `verbose(argv)`."""
    argv = sys.argv if argv is None else argv
    if verbose(argv):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        from tftool import quiet

        try:
            quiet.filter_stderr()
        except OSError:  # no pipe or process to spare: run unfiltered
            pass
    importlib.import_module(f"tftool.cli.{tool}").cli_main()


def _entry(tool):
    def run():
        main(tool)
    run.__name__ = tool
    return run


(train, quantize, prune, distill, cluster, export, benchmark, check, predict, search,
 import_model) = (_entry(t) for t in TOOLS)
