"""`python -m tftool.search`, the same as the console script tftool-search."""
from tftool import launch

launch.main("search")
