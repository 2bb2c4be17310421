"""An export folder holds one model's files: tftool-export and tftool-benchmark refuse to mix
another model's into it (export/owner.py)."""
import json
import os
import shutil

import pytest

from tftool import UserError
from tftool.export import owner


def _workdir_with_float(path):
    os.makedirs(os.path.join(path, "float"))
    open(os.path.join(path, "float", "model.h5"), "wb").close()
    return str(path)


def test_an_export_folder_refuses_another_models_files(tmp_path):
    export_dir = str(tmp_path / "exported")
    work = _workdir_with_float(tmp_path / "work")
    owner.check(export_dir, work, "digits28_small_cnn")  # absent: fine
    os.makedirs(export_dir)
    open(os.path.join(export_dir, "digits28_small_cnn_int8.tflite"), "wb").close()
    owner.record(export_dir, work, "digits28_small_cnn", "folder:samples/digits28")
    owner.check(export_dir, work, "digits28_small_cnn")  # its own model again: fine
    with pytest.raises(UserError) as e:  # make micro's default workdir after a quick start
        owner.check(export_dir, str(tmp_path / "workdir"), "digits_small_cnn")
    message = str(e.value)
    assert "holds the files of digits28_small_cnn" in message and "\n" not in message
    assert f"--export_dir={os.path.join(export_dir, 'digits_small_cnn')}" in message
    # the same file names from another workdir that still has its model: refused too
    other = _workdir_with_float(tmp_path / "other")
    with pytest.raises(UserError, match=f"exported from {os.path.abspath(work)}"):
        owner.check(export_dir, other, "digits28_small_cnn")
    # a project copied elsewhere, workdir and export folder together, is still the same one
    copy = tmp_path / "copy"
    shutil.copytree(work, copy / "work")
    shutil.copytree(export_dir, copy / "exported")
    owner.check(str(copy / "exported"), str(copy / "work"), "digits28_small_cnn")
    # ... and a workdir that is gone hands the folder over
    os.remove(os.path.join(work, "float", "model.h5"))
    owner.check(export_dir, other, "digits28_small_cnn")
    assert json.load(open(os.path.join(export_dir, owner.SOURCE_FILE)))["workdir"] == work


def test_a_folder_exported_before_the_source_file_existed_is_judged_by_its_file_names(
        tmp_path):
    export_dir = tmp_path / "exported"
    export_dir.mkdir()
    (export_dir / "mnist_resnet8_qat_int8.tflite").write_bytes(b"")
    (export_dir / "notes.tflite").write_bytes(b"")  # not a variant's name: ignored
    owner.check(str(export_dir), str(tmp_path / "w"), "mnist_resnet8")
    # a model whose name ends like a stage (x_qat) owns x_qat_int8
    owner.check(str(export_dir), str(tmp_path / "w"), "mnist_resnet8_qat")
    with pytest.raises(UserError, match="holds the files of mnist_resnet8,"):
        owner.check(str(export_dir), str(tmp_path / "w"), "digits_small_cnn")


def test_make_micro_on_a_workdir_without_a_model_trains_nothing_and_says_so(tmp_path):
    """`make micro` used to train the default data set into ./workdir when the user's model
    was elsewhere; now it exports WORKDIR's models or stops with one line."""
    import subprocess
    import sys

    from conftest import REPO

    venv = os.path.dirname(os.path.dirname(sys.executable))
    if not os.path.exists(os.path.join(venv, ".installed")):
        pytest.skip("make's install target needs the project's venv (make install)")
    workdir, export_dir = tmp_path / "workdir", tmp_path / "exported"
    # -o: never (re)install the venv from a test, whatever the mtimes of setup.cfg say
    result = subprocess.run(["make", "-s", "-o", os.path.join(venv, ".installed"), "micro",
                             f"VENV={venv}", f"WORKDIR={workdir}", f"EXPORT_DIR={export_dir}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    errors = [l for l in result.stderr.splitlines() if l.startswith("tftool-export: error:")]
    assert len(errors) == 1 and f"run `tftool-train --workdir={workdir}`" in errors[0], \
        result.stderr[-2000:]
    assert not workdir.exists() and not export_dir.exists()
