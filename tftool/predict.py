"""`python -m tftool.predict`: the entry point is tftool/cli/predict.py (console script tftool-predict)."""
from tftool import launch

if __name__ == "__main__":
    launch.main("predict")
