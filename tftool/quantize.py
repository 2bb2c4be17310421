"""`python -m tftool.quantize`, the same as the console script tftool-quantize."""
from tftool import launch

if __name__ == "__main__":
    launch.main("quantize")
