"""The console scripts (tftool-train, ...) and `python -m tftool <command>` start here.

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
# `python -m tftool <command>`: the console script's name without "tftool-" -> its cli/ module
# (tftool-import's is import_model: `import` cannot name a Python function or module).
COMMANDS = {("import" if tool == "import_model" else tool): tool for tool in TOOLS}
HELP = ("-h", "--help", "-?", "--helpshort", "--helpfull", "help")


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


def usage():
    """What `python -m tftool` prints: the commands, each with its module's first line."""
    lines = ["usage: python -m tftool <command> [--flag=value ...]",
             "The same as the console script tftool-<command>; "
             "`python -m tftool <command> --help` lists its flags.", "", "commands:"]
    for command, tool in COMMANDS.items():
        doc = importlib.import_module(f"tftool.cli.{tool}").__doc__ or ""
        lines.append(f"  {command:<10}  {doc.split(': `', 1)[0].strip()}")
    return "\n".join(lines)


def command_main(argv=None):
    """`python -m tftool <command> [flags]` (tftool/__main__.py): runs main(COMMANDS[command])
    with the command's flags, as tftool-<command> does. No command, or a help flag instead of
    one: prints usage() and returns (exit 0); an unknown command: one line, exit status 2."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] in HELP:
        print(usage())
        return
    tool = COMMANDS.get(argv[1])
    if tool is None:
        print(f"python -m tftool: error: unknown command {argv[1]!r}; use one of "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [argv[0], *argv[2:]]  # absl parses the command's flags, as the script's
    main(tool, sys.argv)


def _entry(tool):
    def run():
        main(tool)
    run.__name__ = tool
    return run


(train, quantize, prune, distill, cluster, export, benchmark, check, predict, search,
 import_model) = (_entry(t) for t in TOOLS)
