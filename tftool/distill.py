"""`python -m tftool.distill`: the entry point is tftool/cli/distill.py (console script tftool-distill)."""
from tftool import launch

if __name__ == "__main__":
    launch.main("distill")
