"""`python -m tftool.cluster`, the same as the console script tftool-cluster."""
from tftool import launch

if __name__ == "__main__":
    launch.main("cluster")
