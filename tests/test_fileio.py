import os

import pytest

from tftool import UserError, fileio


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = str(tmp_path / "model.tflite")
    fileio.write_bytes(path, b"good")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("killed")
    assert open(path, "rb").read() == b"good"
    assert os.listdir(tmp_path) == ["model.tflite"]  # no temporary left behind
    assert os.stat(path).st_mode & 0o044  # readable by the app that ships it


def test_same_bytes_says_whether_the_file_already_holds_the_content(tmp_path):
    path = str(tmp_path / "model.tflite")
    assert not fileio.same_bytes(path, b"")  # absent
    fileio.write_bytes(path, b"model")
    assert fileio.same_bytes(path, b"model")
    assert not fileio.same_bytes(path, b"model2")
    assert not fileio.same_bytes(str(tmp_path), b"model")  # a folder: unreadable as a file


@pytest.mark.parametrize("content", [b'{"a": 1', b"\xff\xfe garbage", b""])
def test_damaged_json_is_one_user_error_naming_the_file(tmp_path, content):
    path = tmp_path / "metrics.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"{path} is damaged \(not valid JSON: .*\); delete it"):
        fileio.read_json(str(path))
    assert path.read_bytes() == content  # nothing is "repaired" behind the user's back


def test_json_object_files_refuse_other_values(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match=r"is damaged \(a JSON list, not an object\); run it again"):
        fileio.read_json_object(str(path), fix="run it again")
    assert fileio.read_json_object(str(tmp_path / "absent.json")) is None


def test_load_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no model at"):
        fileio.load_model(str(tmp_path / "model.h5"))


def test_truncated_or_foreign_model_file_is_one_user_error(tmp_path):
    import h5py
    import numpy as np

    from tftool import models

    good = str(tmp_path / "good.h5")
    fileio.save_model(models.build("small_cnn", (8, 8, 1), 10, width=4), good)
    content = open(good, "rb").read()
    cases = {"truncated.h5": content[:len(content) // 2], "text.h5": b"not a model\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:  # valid HDF5, no Keras model in it
        f["x"] = np.zeros(3)
    for name in (*cases, "foreign.h5"):
        with pytest.raises(UserError, match=rf"{name} is not a readable Keras model \(.*\); "
                                            r"run the stage"):
            fileio.load_model(str(tmp_path / name))
    assert fileio.load_model(good).count_params() > 0
