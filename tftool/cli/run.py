"""Running an entry point: defining its flags, parsing the command line, and the one-line
error exit.

Errors: libraries raise UserError (or OSError for the file system); `run` turns each into one
line `tftool-<tool>: error: ...` on stderr and exit status 2, with no traceback. A help flag
exits 0 (parse_flags); under make, flags the entry point does not define are dropped with a
note (drop_foreign_flags); Python's log and warning noise stays hidden unless --verbosity is
given (quiet_logs).
"""
import contextlib
import errno
import os
import re
import sys

from tftool import UserError
from tftool.cli.flags import RENAMED, define

from absl import app, flags, logging

# Read when a function runs: using_flags points it at a fresh FlagValues for an in-process
# call (tftool.api, the tests).
FLAGS = flags.FLAGS


# Flags absl's parser handles itself; they are not in FLAGS but every entry point takes them.
ABSL_SPECIAL_FLAGS = ("flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml",
                      "only_check_args")


def drop_foreign_flags(argv, prog):
    """Removes --name[=value] arguments that this entry point does not define.

    Only used when TFTOOL_SHARED_FLAGS=1 (the Makefile sets it), so that `make all FLAGS=...`
    can hand one set of flags to every stage; each stage says which flags it ignored, so a typo
    is still visible. Run directly, an unknown flag stays a parse error.
    """
    kept = [argv[0]]
    for arg in argv[1:]:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        known = (name is None or name in FLAGS or name in ABSL_SPECIAL_FLAGS
                 or (name.startswith("no") and name[2:] in FLAGS))
        if known:
            kept.append(arg)
        else:
            print(f"{prog}: note: ignoring {arg} (not a flag of {prog})", file=sys.stderr)
    return kept


_OS_FIXES = {
    errno.ENOTDIR: "a file stands where a folder belongs; move it away or choose another path",
    errno.EISDIR: "a folder stands where a file belongs; move it away or choose another path",
    errno.EACCES: "permission denied; fix the permissions or choose another path",
    errno.EPERM: "operation not permitted; fix the permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "a file stands where a folder belongs; move it away or choose another path",
    errno.ENOSPC: "no space left on the device; free some space and run again",
}


def os_error_line(e):
    """One line for an OSError from the file system: the path, what is wrong, the fix."""
    path = e.filename or ""
    if e.filename2:
        path = f"{path} -> {e.filename2}"
    fix = _OS_FIXES.get(e.errno, "check the path and run again")
    reason = e.strerror or str(e)
    return f"{path}: {reason}; {fix}" if path else f"{reason}; {fix}"


def guarded(prog, main, positional=False):
    """`main` wrapped so that every user-caused failure becomes one line `<prog>: error: ...`
    on stderr and exit status 2 (SystemExit), with no traceback: UserError, and OSError from
    the file system (a file where a folder belongs, a folder that cannot be read or written,
    a full disk). Positional arguments are refused unless `positional`; so is a flag's old
    name (RENAMED), with the new one."""
    def wrapped(argv):
        if len(argv) > 1 and not positional:
            fail(prog, f"unexpected arguments {' '.join(argv[1:])}; flags are --name=value")
        for old, new in RENAMED.items():
            if old in FLAGS and FLAGS[old].present:
                fail(prog, f"--{old} is now --{new}: pass --{new}={FLAGS[old].value}")
        try:
            return main(argv)
        except UserError as e:
            fail(prog, str(e))
        except OSError as e:
            if e.filename is None and e.errno is None:
                raise  # not a file-system error: a bug, keep its traceback
            fail(prog, os_error_line(e))
    return wrapped


def run(prog, main, positional=False):
    """absl `app.run` of guarded(prog, main), for entry point `prog` (e.g. "tftool-train"),
    with Python's log and warning noise hidden unless --verbosity was given (quiet_logs)."""
    argv = sys.argv
    if os.environ.get("TFTOOL_SHARED_FLAGS") == "1":
        argv = drop_foreign_flags(argv, prog)
    guarded_main = guarded(prog, main, positional)

    def quiet_main(argv):
        if not FLAGS["verbosity"].present:
            quiet_logs()
        return guarded_main(argv)
    app.run(quiet_main, argv=argv, flags_parser=parse_flags)


def parse_flags(argv):
    """absl's parse_flags_with_usage (a bad flag: its FATAL line, exit 1), except that a help
    flag (--help, --helpshort, --helpfull, -?), which absl ends with exit status 1 after
    printing the usage, exits 0: asking for help is not a failure (GNU and argparse exit 0),
    so a script or `make` can call it. A bad value before the help flag still exits 1 (absl
    reports an unknown flag only after the whole line, so `--bogus --help` prints the help)."""
    try:
        return FLAGS(argv)
    except flags.Error:
        return app.parse_flags_with_usage(argv)  # parses again to print absl's message
    except SystemExit as e:
        sys.exit(0 if e.code == 1 else e.code)  # only a help flag exits inside parsing


# Python-side messages that say nothing a user can act on: Keras's per-batch callback timing
# on 10-ms batches, and the deprecation of tf.lite.Interpreter that TensorFlow's own
# QuantizationDebugger triggers (tftool runs ai_edge_litert's interpreter everywhere else).
# tf_keras's note that a model loaded for inference has no compiled metrics is the same, and so
# is TFDS's note, while it prepares digits the first time, that the version folder it is
# writing has no dataset_info.json yet.
QUIET_LOG_MESSAGES = (r"Callback method `on_train_batch_(begin|end)` is slow",
                      r"Compiled the loaded model, but the compiled metrics have yet to be built",
                      r"Variant folder .* has no dataset_info\.json")
QUIET_WARNINGS = (r"\s*Warning: tf\.lite\.Interpreter is deprecated",)


def quiet_logs():
    """absl and TensorFlow's Python loggers at WARNING (absl's app.run raises an unset
    --verbosity to INFO), QUIET_LOG_MESSAGES and QUIET_WARNINGS dropped. `-v 0` keeps all."""
    import logging as std_logging
    import warnings

    logging.set_verbosity(logging.WARNING)

    class _Drop(std_logging.Filter):
        def filter(self, record):
            text = record.getMessage()
            return not any(re.search(p, text) for p in QUIET_LOG_MESSAGES)
    for name in ("tensorflow", "absl"):
        logger = std_logging.getLogger(name)
        logger.setLevel(std_logging.WARNING)
        logger.addFilter(_Drop())
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def entry_point(prog, names, main, defaults=None, positional=False):
    """Defines the flags `names` (with `defaults`) and runs `main` as `prog` (see run).
    `--help` shows the docstring of `main`'s module and these flags (define's key_module)."""
    define(names, defaults, key_module=sys.argv[0])
    entry = sys.modules.get(main.__module__)
    script = sys.modules.get("__main__")
    if script is not None and entry is not None and entry.__doc__:
        script.__doc__ = entry.__doc__  # what absl's usage() prints above the flags
    run(prog, main, positional)


@contextlib.contextmanager
def using_flags(module, values):
    """Inside the block, the FLAGS that entry point `module` (a tftool.cli.<command> module)
    and the cli modules it calls (flags.py, run.py, shared.py) read are `values`, an absl
    FlagValues with the command's flags defined and parsed: an in-process call (tftool.api,
    the tests' run_main) leaves the global FLAGS and the next call alone."""
    from tftool.cli import flags as cli_flags, shared

    holders = (module, cli_flags, sys.modules[__name__], shared)
    saved = [holder.FLAGS for holder in holders]
    for holder in holders:
        holder.FLAGS = values
    try:
        yield
    finally:
        for holder, flag_values in zip(holders, saved):
            holder.FLAGS = flag_values
