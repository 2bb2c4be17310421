"""`python -m tftool.train`: the entry point is tftool/cli/train.py (console script tftool-train)."""
from tftool.cli.train import cli_main

cli_main()
