"""`python -m tftool.prune`: the entry point is tftool/cli/prune.py (console script tftool-prune)."""
from tftool.cli.prune import cli_main

if __name__ == "__main__":
    cli_main()
