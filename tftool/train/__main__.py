"""`python -m tftool.train`: the entry point is tftool/cli/train.py (console script tftool-train)."""
from tftool import launch

launch.main("train")
