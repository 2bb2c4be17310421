"""`python -m tftool.prune`, the same as the console script tftool-prune."""
from tftool import launch

if __name__ == "__main__":
    launch.main("prune")
