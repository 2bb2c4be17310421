"""TFDS builders that ship with tftool (no download needed)."""
from tftool.datasets.digits import Digits  # noqa: F401  (registers 'digits' with TFDS)
