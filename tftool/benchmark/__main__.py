"""`python -m tftool.benchmark`: the entry point is tftool/cli/benchmark.py (console script tftool-benchmark)."""
from tftool import launch

launch.main("benchmark")
