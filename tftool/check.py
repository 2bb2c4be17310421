"""`python -m tftool.check`, the same as the console script tftool-check."""
from tftool import launch

if __name__ == "__main__":
    launch.main("check")
