"""`python -m tftool.benchmark`: the entry point is tftool/cli/benchmark.py (console script tftool-benchmark)."""
from tftool.cli.benchmark import cli_main

cli_main()
