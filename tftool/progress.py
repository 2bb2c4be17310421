"""Progress for the long steps (export's conversions, the benchmark's rows), on a terminal only.

On a terminal (stderr is a TTY) a tqdm bar shows what is running, how far it is and an
estimate of the time left ("benchmark 23/80 rows, ~40 s left" in tqdm's words:
`benchmark:  29%|██▉ | 23/80 [00:12<00:40]`); it is cleared when the step ends, so only the
result lines stay. In a log file (make's output redirected, CI) nothing is drawn: one line per
result, written by `write`, keeps the log short. tqdm: https://tqdm.github.io/
"""
import sys


def interactive():
    """Whether the terminal (the real stderr, quiet.terminal) can show a redrawn bar."""
    from tftool import quiet

    return quiet.terminal_is_tty()


def steps(iterable, what, total=None, unit="step"):
    """`iterable`, with a progress bar named `what` on a terminal (none in a log).

    Args:
      iterable: the work items; total: their number when `iterable` has no len().
      what: the bar's label, e.g. "export"; unit: what one item is, e.g. "variant".
    Returns: an iterable over the same items.
    """
    from tqdm import tqdm

    from tftool import quiet

    return tqdm(iterable, desc=what, total=total, unit=f" {unit}", file=quiet.terminal(),
                disable=not interactive(), leave=False, dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} {unit}s |{bar}| ~{remaining} left")


def write(line):
    """Prints one result line to stdout without breaking a progress bar being drawn."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()
