"""Every recipe parses, says how to run it and what it should give."""
import glob
import os
import subprocess
import sys

from conftest import REPO

PARSE = """
import sys
from absl import flags
from tftool.cli import flags as cli_flags, train
cli_flags.define(train.NAMES, train.DEFAULTS)  # the flags tftool-train defines when it runs
for path in sys.argv[1:]:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["tftool-train", "--flagfile=" + path])
    print(path, flags.FLAGS.dataset, flags.FLAGS.model, flags.FLAGS.epochs)
"""


def test_flagfiles_parse_and_start_with_command_and_expectation():
    paths = sorted(glob.glob(os.path.join(REPO, "recipes", "*.flags")))
    names = {os.path.basename(p) for p in paths}
    assert {"digits.flags", "mnist.flags", "fashion_mnist.flags", "cifar10.flags"} <= names
    for path in paths:
        header = [l for l in open(path).read().splitlines() if l.startswith("#")]
        assert any("tftool-train --flagfile=recipes/" in l for l in header), path
        assert any("Expected" in l for l in header), path
    result = subprocess.run([sys.executable, "-c", PARSE, *paths], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recipes/cifar10.flags cifar10 mobilenet_v2 30" in result.stdout


def test_shell_recipes_are_valid_bash():
    for path in glob.glob(os.path.join(REPO, "recipes", "*.sh")):
        assert os.access(path, os.X_OK), path
        subprocess.run(["bash", "-n", path], check=True, timeout=30)
