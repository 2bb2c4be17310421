"""`python -m tftool.benchmark`, the same as the console script tftool-benchmark."""
from tftool import launch

launch.main("benchmark")
