import os

import pytest

from tftool import UserError, io as workdir


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = str(tmp_path / "model.tflite")
    workdir.write_bytes(path, b"good")
    with pytest.raises(RuntimeError):
        with workdir.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("killed")
    assert open(path, "rb").read() == b"good"
    assert os.listdir(tmp_path) == ["model.tflite"]  # no temporary left behind
    assert os.stat(path).st_mode & 0o044  # readable by the app that ships it


def test_check_config_refuses_mixing_runs(tmp_path):
    workdir.check_config(str(tmp_path), {"dataset": "digits", "model": "small_cnn"})
    workdir.check_config(str(tmp_path), {"dataset": "digits", "model": "small_cnn"})
    with pytest.raises(UserError, match="--model=small_cnn, not mobilenet_v2"):
        workdir.check_config(str(tmp_path), {"dataset": "digits", "model": "mobilenet_v2"})
    workdir.check_config(str(tmp_path), {"dataset": "digits", "model": "mobilenet_v2"},
                         overwrite=True)
    assert workdir.read_json(str(tmp_path / "config.json"))["model"] == "mobilenet_v2"


def test_unknown_stage():
    with pytest.raises(ValueError, match="allowed: float, qat"):
        workdir.stage_dir("w", "nope")


def test_load_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no model at"):
        workdir.load_model(str(tmp_path / "model.h5"))


def test_stage_lock_refuses_a_second_trainer_and_frees_on_exit(tmp_path):
    with workdir.stage_lock(str(tmp_path)):
        with pytest.raises(UserError, match=rf"being trained by another process \(pid "
                                            rf"{os.getpid()}\)"):
            with workdir.stage_lock(str(tmp_path)):
                pass
    with workdir.stage_lock(str(tmp_path)):  # released: a later run gets it
        pass
