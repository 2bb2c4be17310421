"""`python -m tftool.train`, the same as the console script tftool-train."""
from tftool import launch

launch.main("train")
