"""`python -m tftool.predict`, the same as the console script tftool-predict."""
from tftool import launch

if __name__ == "__main__":
    launch.main("predict")
