"""`python -m tftool.distill`: the entry point is tftool/cli/distill.py (console script tftool-distill)."""
from tftool.cli.distill import cli_main

if __name__ == "__main__":
    cli_main()
