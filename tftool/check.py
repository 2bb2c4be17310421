"""`python -m tftool.check`: the entry point is tftool/cli/check.py (console script tftool-check)."""
from tftool import launch

if __name__ == "__main__":
    launch.main("check")
