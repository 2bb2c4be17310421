"""`python -m tftool <command> [--flag=value ...]`: the console script tftool-<command>, quiet
terminal included (launch.command_main; `python -m tftool import` is tftool-import).
`python -m tftool` alone lists the commands."""
from tftool import launch

if __name__ == "__main__":
    launch.command_main()
