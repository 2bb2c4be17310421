"""`python -m tftool.export`, the same as the console script tftool-export."""
from tftool import launch

launch.main("export")
