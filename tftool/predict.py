"""`python -m tftool.predict`: the entry point is tftool/cli/predict.py (tftool-predict)."""
from tftool.cli.predict import cli_main

if __name__ == "__main__":
    cli_main()
