"""`python -m tftool.distill`, the same as the console script tftool-distill."""
from tftool import launch

if __name__ == "__main__":
    launch.main("distill")
