"""Every file under WORKDIR or EXPORT_DIR damaged from outside, a path that is a file where a
folder belongs (or the reverse), an unwritable folder: one line naming the path and the fix,
exit status 2, no traceback, and nothing already written changes."""
import errno
import os
import shutil

import pytest

from inprocess import run_main

# One epoch learns little: --allow_chance_accuracy lets the tiny models be written.
TINY = ["--epochs=1", "--warmup_epochs=0", "--lr_schedule=constant", "--allow_chance_accuracy"]
TRAIN = TINY + ["--width=4"]


def snapshot(folder):
    """{relative path: bytes} of every file under `folder` (stage locks aside: a refused run
    takes the lock before it reads config.json)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name != ".lock":
                path = os.path.join(root, name)
                out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


@pytest.fixture(scope="module")
def done(tmp_path_factory, tfds_dir):
    """A tiny trained workdir with a float32 export, copied afresh for each test."""
    base = tmp_path_factory.mktemp("damaged")
    common = [f"--workdir={base}/w", f"--data_dir={tfds_dir}"]
    for name, args in (("train", TRAIN), ("distill", TINY + ["--student_width=2"]),
                       ("export", [f"--export_dir={base}/e", "--variants=float32",
                                   "--allow_chance_accuracy"])):
        result = run_main(name, *common, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    return base, tfds_dir


@pytest.fixture
def work(done, tmp_path):
    base, tfds_dir = done
    shutil.copytree(base / "w", tmp_path / "w")
    shutil.copytree(base / "e", tmp_path / "e")
    return tmp_path, [f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}"]


def one_line(result, prog, *parts):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.mark.parametrize("relative,content,tool,args,fix", [
    ("w/float/config.json", b'{"dataset": "dig', "quantize", [], "run `tftool-train --overwrite`"),
    ("w/float/config.json", b"[]", "export", ["--export_dir={e}", "--allow_chance_accuracy"],
     "not an object"),
    ("w/float/metrics.json", b"\x00\x01garbage", "train", TRAIN, "run `tftool-train --overwrite"),
    ("w/float/model.h5", "truncate", "export", ["--export_dir={e}", "--allow_chance_accuracy"],
     "not a readable Keras model"),
    ("w/float/model.h5", b"not hdf5", "quantize", [], "not a readable Keras model"),
    ("w/float/model.h5", "truncate", "distill", TINY + ["--overwrite"],
     "not a readable Keras model"),
    ("w/student/metrics.json", b"{", "export", ["--export_dir={e}", "--allow_chance_accuracy"],
     "--overwrite"),
    ("e/digits_small_cnn_float32.json", b"{broken", "benchmark",
     ["--export_dir={e}", "--threads=1", "--batch_sizes=1", "--xnnpack=on", "--min_runs=1",
      "--min_seconds=0", "--warmup_seconds=0"], "run tftool-export again"),
    ("w/float/backup/chief/checkpoint", b"model_checkpoint_path: \"ckpt-7\"\n", "train",
     TRAIN + ["--epochs=2"], "resume state"),
])
def test_a_damaged_file_is_one_line_and_nothing_changes(work, relative, content, tool, args,
                                                        fix):
    tmp, common = work
    path = tmp / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if relative.endswith("checkpoint"):  # an interrupted stage: model and metrics not written
        os.remove(tmp / "w" / "float" / "model.h5")
        os.remove(tmp / "w" / "float" / "metrics.json")
    path.write_bytes(path.read_bytes()[:200] if content == "truncate" else content)
    before = snapshot(tmp)
    args = [a.format(e=tmp / "e") for a in args]
    one_line(run_main(tool, *common, *args), f"tftool-{tool}", fix)
    assert snapshot(tmp) == before


@pytest.mark.parametrize("where,tool,args", [
    ("w", "train", TRAIN + ["--workdir={tmp}/w/float/model.h5"]),     # WORKDIR is a file
    ("w/float", "train", TRAIN + ["--workdir={tmp}/x"]),               # W/float is a file
    ("e", "export", ["--export_dir={tmp}/w/float/model.h5",            # EXPORT_DIR is a file
                     "--allow_chance_accuracy"]),
])
def test_a_file_where_a_folder_belongs(work, where, tool, args):
    tmp, common = work
    if where == "w/float":
        (tmp / "x").mkdir()
        (tmp / "x" / "float").write_text("a file")
    before = snapshot(tmp)
    args = [a.format(tmp=tmp) for a in args]
    line = one_line(run_main(tool, *common, *args), f"tftool-{tool}",
                    "a file stands where a folder belongs")
    assert str(tmp) in line
    assert snapshot(tmp) == before


def test_a_folder_where_a_file_belongs(work):
    tmp, common = work
    (tmp / "e" / "labels.txt").unlink()
    (tmp / "e" / "labels.txt").mkdir()
    before = snapshot(tmp)
    one_line(run_main("export", *common, f"--export_dir={tmp}/e", "--variants=float32",
                      "--allow_chance_accuracy"),
             "tftool-export", f"{tmp}/e/labels.txt", "a folder stands where a file belongs")
    assert snapshot(tmp) == before


def test_an_unwritable_folder(work, monkeypatch):
    # Tests run as root, which permission bits do not stop; the folder refuses new files here
    # exactly as an unwritable one does (mkstemp raises EACCES naming the folder).
    import tempfile

    tmp, common = work
    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir and str(dir).startswith(str(tmp / "e")):
            raise PermissionError(errno.EACCES, "Permission denied", dir)
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = snapshot(tmp)
    one_line(run_main("export", *common, f"--export_dir={tmp}/e", "--variants=float32",
                      "--allow_chance_accuracy"),
             "tftool-export", f"{tmp}/e: Permission denied; permission denied; fix the "
                              f"permissions or choose another path")
    assert snapshot(tmp) == before
