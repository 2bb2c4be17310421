"""`python -m tftool.quantize`: the entry point is tftool/cli/quantize.py (console script tftool-quantize)."""
from tftool import launch

if __name__ == "__main__":
    launch.main("quantize")
