"""`python -m tftool.export`: the entry point is tftool/cli/export.py (console script tftool-export)."""
from tftool.cli.export import cli_main

cli_main()
