"""The Python API (tftool/api.py): docs/api.md's example runs as written; every function's
docstring documents what its command's --help does; keywords, errors and flag state."""
import importlib
import os
import re
import subprocess
import sys

import pytest
from absl import flags

import tftool
from conftest import REPO
from inprocess import run_main
from tftool import api
from tftool.cli import flags as cli_flags, run as cli_run, shared


def normal(text):
    """`text` with every run of white space one space, and none after a hyphen: --help and
    docstrings wrap lines differently (absl breaks "tftool-train" after its hyphen)."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def example_code():
    """The Python code blocks of docs/api.md, in order, as one script."""
    text = open(os.path.join(REPO, "docs", "api.md"), encoding="utf-8").read()
    return "\n\n".join(re.findall(r"^```python\n(.*?)^```", text, re.S | re.M))


def test_the_example_in_docs_runs_as_written(tmp_path, tfds_dir, monkeypatch):
    script = tmp_path / "example.py"
    script.write_text(example_code())
    env = {**os.environ, "TFDS_DATA_DIR": tfds_dir, "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    out = result.stdout
    accuracy = re.search(r"^float: test accuracy (0\.\d{4}) \[0\.\d{4}, 0\.\d{4}\] on 359 images$",
                         out, re.M)
    assert accuracy and float(accuracy.group(1)) >= 0.85, out  # 0.95-0.96 after 2 epochs
    assert re.search(r"^qat: test accuracy 0\.\d{4}$", out, re.M), out
    assert re.search(r"^refused: .*--target_sparsity must be in \(0, 1\)", out, re.M), out
    for variant in ("float32", "int8", "qat_int8"):
        path = f"exported/digits_small_cnn_{variant}.tflite"
        assert re.search(rf"^{variant}: {path}, \d+\.\d KiB, test accuracy 0\.\d{{4}}, input "
                         rf"(float32|uint8)$", out, re.M), out
        assert (tmp_path / path).is_file()
        assert re.search(rf"^{variant}: accuracy 0\.\d{{4}}, p50 \d+\.\d{{4}} ms$", out, re.M), out
    assert re.search(r"^float: accuracy 0\.\d{4}, p50", out, re.M), out  # the Keras model's row
    assert "## What to ship" in open(tmp_path / "exported" / "report.md").read()
    assert (tmp_path / "work" / "qat" / "model.h5").is_file()
    # predict on its int8 file, in this process: one result per image, an unreadable one too
    from PIL import Image

    monkeypatch.setattr(api, "_quieted", [True])  # leave this process's loggers as they are
    Image.new("L", (8, 8)).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not an image")
    int8 = str(tmp_path / "exported" / "digits_small_cnn_int8.tflite")
    blank, notes = api.predict([tmp_path / "blank.png", str(tmp_path / "notes.png")],
                               tflite=int8, top_k=3)
    assert blank["image"].endswith("blank.png") and len(blank["top_k"]) == 3
    assert 0 <= blank["top_k"][0]["probability"] <= 1 and "error" in notes
    with pytest.raises(tftool.UserError, match="tflite=PATH.tflite is required"):
        api.predict([str(tmp_path / "blank.png")])


def commands():
    return api.available()


@pytest.mark.parametrize("name", commands())
def test_the_docstring_documents_every_flag_as_help_does(name):
    command = api.COMMANDS[name]
    module = importlib.import_module(f"tftool.cli.{command.module}")
    function = getattr(api, name)
    doc = normal(function.__doc__)
    values = cli_flags.command_flags(module)
    assert normal(module.__doc__) in doc  # what --help prints above the flags
    taken = [n for n in module.NAMES if n not in command.exclude]
    for flag in taken:
        default = f" (default: {values[flag].default_as_str})" if values[flag].default_as_str \
            else ""
        assert normal(f"{api.parameter_name(flag)}: {values[flag].help}{default}") in doc, flag
        assert normal(cli_flags.FLAG_SPECS[flag].help) in doc, flag  # the table's own text
    params = [p for p in function.__signature__.parameters.values()
              if p.kind == p.KEYWORD_ONLY]
    assert [p.name for p in params] == [api.parameter_name(n) for n in taken]
    assert [p.default for p in params] == [values[n].default for n in taken]
    assert "Returns:" in doc and "Raises:" in doc and command.prog in doc


@pytest.mark.parametrize("name", ["train", "benchmark"])  # no TensorFlow import: quick
def test_help_of_the_entry_point_and_of_the_function_say_the_same(name):
    result = subprocess.run([sys.executable, "-m", "tftool", name, "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = normal(result.stdout)
    doc = normal(getattr(api, name).__doc__)
    module = importlib.import_module(f"tftool.cli.{name}")
    values = cli_flags.command_flags(module)
    for flag in module.NAMES:
        text = normal(values[flag].help)
        assert text in shown and text in doc, flag


def test_import_tftool_and_help_stay_light():
    code = ("import sys, tftool, pydoc; text = pydoc.render_doc(tftool.api.train); "
            "assert 'epochs' in text; print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result


def test_keywords_become_the_command_line():
    names = ("workdir", "augment", "threads", "from", "epochs", "width")
    assert api.argv("tftool-x", names, {"workdir": "w", "augment": False, "threads": [1, 2],
                                        "from_": "pruned", "epochs": 3, "width": None}) == [
        "tftool-x", "--workdir=w", "--noaugment", "--threads=1,2", "--from=pruned",
        "--epochs=3"]
    assert api.argv("tftool-x", names, {"from": "float", "augment": True}) == [
        "tftool-x", "--from=float", "--augment"]


def test_unknown_keywords_and_positional_arguments_are_refused():
    with pytest.raises(TypeError, match=r"^epoch: not a flag of tftool-train; its flags are "
                                        r"workdir, .*\bepochs\b"):
        api.train(epoch=3)
    with pytest.raises(TypeError, match="^epochs: not a flag of tftool-export"):
        api.export(epochs=1)
    with pytest.raises(TypeError, match="keyword arguments only"):
        api.train("work")
    assert "from_" in str(pytest.raises(TypeError, api.quantize, form="pruned").value)


def test_errors_are_the_commands_one_line_and_flags_do_not_stay(tmp_path, monkeypatch):
    monkeypatch.setattr(api, "_quieted", [True])  # leave this process's loggers as they are
    workdir = str(tmp_path / "w")
    with pytest.raises(tftool.UserError, match=r"--epochs must be ≥ 1"):
        api.train(workdir=workdir, epochs=0)  # refused by the flag's check
    with pytest.raises(tftool.UserError, match=r"leaves no epoch after warm-up"):
        api.train(workdir=workdir, epochs=2, warmup_epochs=3, lr_schedule="cosine_warmup")
    assert not os.path.exists(workdir)  # refused before any folder was made
    # the entry point's FLAGS are the global ones again, untouched
    assert importlib.import_module("tftool.cli.train").FLAGS is flags.FLAGS
    assert cli_flags.FLAGS is cli_run.FLAGS is shared.FLAGS is flags.FLAGS
    # the same message as the command's one-line error
    with pytest.raises(tftool.UserError) as raised:
        api.quantize(workdir=workdir, epochs=1)
    cli = run_main("quantize", f"--workdir={workdir}", "--epochs=1")
    assert cli.returncode == 2 and cli.stderr.strip() == f"tftool-quantize: error: {raised.value}"
