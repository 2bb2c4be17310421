"""Runs an entry point's main in this process, as `tftool-<name>` would run it.

Each entry point's flags are defined into a fresh absl FlagValues (as its cli_main does into
the global one), parsed from the given arguments, and the FLAGS of the module and of the cli
modules it calls are pointed at them for the call (cli/run.using_flags); errors go
through the same one-line wrapper as the console script. Seconds instead of a subprocess's
TensorFlow start-up.
"""
import contextlib
import importlib
import io
import subprocess

from absl import flags

from tftool.cli import flags as cli_flags, run


def run_main(name, *args):
    """Runs tftool.cli.<name>.main with `args` (--flag=value strings).

    Returns: subprocess.CompletedProcess with returncode (0, 1 for a bad flag value as absl
      exits, 2 for a user error), stdout and stderr text, like conftest.run_cli's.
    """
    module = importlib.import_module(f"tftool.cli.{name}")
    prog = f"tftool-{name}"
    values = cli_flags.command_flags(module)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            run.using_flags(module, values):
        try:
            values([prog, *args])
        except flags.Error as e:  # what absl's app.run prints for a bad flag value
            print(f"FATAL Flags parsing error: {e}", file=err)
            return subprocess.CompletedProcess([prog, *args], 1, out.getvalue(), err.getvalue())
        try:
            run.guarded(prog, module.main)([prog])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess([prog, *args], code, out.getvalue(), err.getvalue())
