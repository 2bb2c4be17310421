"""Shared fixtures. TensorFlow sees 2 logical CPU devices so MirroredStrategy gets 2 replicas."""
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import tftool  # noqa: E402,F401
from tftool.train import strategy  # noqa: E402

# Before TensorFlow's first op: split the CPU so tests can build 2-replica strategies.
strategy.configure_cpu_replicas(2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data_dir shared by the whole session (digits is prepared into it once)."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def digits(tfds_dir):
    from tftool import data
    return data.load("digits", data_dir=tfds_dir)


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory, digits):
    """The digits data set written as PNG files: ROOT/{train,test}/<class>/<i>.png (grayscale);
    train/ holds the whole train split (tftool's validation share included: the folder loader
    holds out its own)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("digits_folder")
    for split, ds in (("train", digits.train.concatenate(digits.validation)),
                      ("test", digits.test)):
        for i, (image, label) in enumerate(ds.as_numpy_iterator()):
            class_dir = root / split / f"class_{label}"
            class_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.squeeze(image, -1), mode="L").save(class_dir / f"{i}.png")
    return str(root)


def run_cli(module, *args, env=None, timeout=600):
    """Runs `python -m tftool <module> args...`; returns the CompletedProcess (text output)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tftool", module, *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr):
    """The lines a user would read: stderr without TensorFlow/absl runtime noise."""
    noise = ("WARNING: All log messages", "E0000", "W0000", "I0000", "INFO:", "WARNING:")
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith(noise)]


# The slowest files first: `make test` hands whole files to 2 xdist workers (--dist loadfile)
# in collection order (the Makefile's --no-loadscope-reorder: xdist's default hands out the
# files with the most tests first), so a slow file collected last leaves one worker busy while
# the other idles. Measured order, slowest first (each file alone: pytest --durations; about
# 135, 100, 70 s for the first three, 10 s for the last); the rest keep their order.
SLOW_FIRST = ("test_model_pipeline.py", "test_readme.py", "test_e2e.py", "test_faults.py",
              "test_import.py", "test_compress_e2e.py", "test_choose.py", "test_stage_runner.py",
              "test_convert.py", "test_search.py", "test_model_zoo.py", "test_api.py",
              "test_tfmot_skip.py", "test_qat.py", "test_damaged_inputs.py", "test_micro.py",
              "test_transfer.py", "test_multi_worker.py", "test_debug.py", "test_data.py",
              "test_cluster.py", "test_presets.py", "test_app_rgb.py", "test_prune.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))
