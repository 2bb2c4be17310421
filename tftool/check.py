"""`python -m tftool.check`: the entry point is tftool/cli/check.py (console script tftool-check)."""
from tftool.cli.check import cli_main

if __name__ == "__main__":
    cli_main()
