"""`python -m tftool.cluster`: the entry point is tftool/cli/cluster.py (console script tftool-cluster)."""
from tftool.cli.cluster import cli_main

if __name__ == "__main__":
    cli_main()
