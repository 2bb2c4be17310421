"""Runs the MediaPipe client (tftool/clients/mediapipe_classify.py) in its own venv.

The venv is .venv-mediapipe/ (`make mediapipe`; `make test` builds it first), or the python
named by $TFTOOL_MEDIAPIPE_PYTHON. Tests take the `mediapipe_python` fixture: without the venv
they skip on a developer's machine and fail under CI=true, so CI cannot pass without running
them.
"""
import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = os.path.join(REPO, "tftool", "clients", "mediapipe_classify.py")


def python_path():
    return os.environ.get("TFTOOL_MEDIAPIPE_PYTHON") or os.path.join(
        REPO, ".venv-mediapipe", "bin", "python")


@pytest.fixture(scope="session")
def mediapipe_python():
    path = python_path()
    if os.access(path, os.X_OK):
        return path
    message = f"MediaPipe venv missing ({path}): run `make mediapipe`"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: MediaPipe tests must run)")
    pytest.skip(message)


def run(python, model_path, image_paths, timeout=300):
    """Runs the client; returns the CompletedProcess (text). JSON is on stdout when rc == 0."""
    # The client is not tftool code: run it with a clean environment (no PYTHONPATH into the
    # training venv's packages).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["GLOG_minloglevel"] = "2"
    return subprocess.run([python, CLIENT, str(model_path), *map(str, image_paths)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def classify(python, model_path, image_paths):
    """The client's parsed JSON: [{"image", "categories": [{index, category_name, score}]}]."""
    proc = run(python, model_path, image_paths)
    if proc.returncode != 0:
        raise AssertionError(f"MediaPipe client failed (rc {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
