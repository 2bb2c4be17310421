"""`python -m tftool.export`: the entry point is tftool/cli/export.py (console script tftool-export)."""
from tftool import launch

launch.main("export")
