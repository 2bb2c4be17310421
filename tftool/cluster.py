"""`python -m tftool.cluster`: the entry point is tftool/cli/cluster.py (console script tftool-cluster)."""
from tftool import launch

if __name__ == "__main__":
    launch.main("cluster")
