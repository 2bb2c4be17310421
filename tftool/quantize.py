"""`python -m tftool.quantize`: the entry point is tftool/cli/quantize.py (console script tftool-quantize)."""
from tftool.cli.quantize import cli_main

if __name__ == "__main__":
    cli_main()
