"""`python -m tftool.search`: the entry point is tftool/cli/search.py (console script tftool-search)."""
from tftool import launch

launch.main("search")
