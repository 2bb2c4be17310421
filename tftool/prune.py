"""`python -m tftool.prune`: the entry point is tftool/cli/prune.py (console script tftool-prune)."""
from tftool import launch

if __name__ == "__main__":
    launch.main("prune")
