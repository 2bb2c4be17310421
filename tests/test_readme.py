"""The README's quick start, run as written: its commands (between the quick-start markers) in
order, with the sample folder, the workdir and the export folder moved into a temporary
folder, and each command's stated output checked. `make install` and `source
.venv/bin/activate` are what the test environment already did; they are skipped."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

BEGIN, END = "<!-- quickstart -->", "<!-- /quickstart -->"


def quickstart_commands():
    """The shell commands of README.md's quick start, in order (comments stripped)."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    commands = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("```", "#")):
            commands.append(line)
    return commands


def test_the_quick_start_block_is_where_a_newcomer_looks():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert text.index(BEGIN) < len(text.splitlines()[0]) + 2500  # on the first screen
    commands = quickstart_commands()
    assert commands[0] == "make install" and commands[1] == "source .venv/bin/activate"
    assert [c.split()[0] for c in commands[3:]] == [
        "tftool-train", "tftool-export", "tftool-predict", "tftool-benchmark"]


def test_the_quick_start_runs_as_written(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    moved = {}
    outputs = []
    for command in quickstart_commands()[2:]:  # after make install and the venv activation
        for path in re.findall(r"(?<![\w/])(samples/\w+|work|exported)(?![\w])", command):
            moved.setdefault(path, str(tmp_path / path))  # same folder names: same model names
        for path, there in sorted(moved.items(), key=lambda kv: -len(kv[0])):
            command = re.sub(rf"(?<![\w/]){re.escape(path)}(?![\w])", there, command)
        args = shlex.split(command)
        if args[0] == "python":
            args[0] = sys.executable
        result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        outputs.append(result.stdout)
    folder, train, export, predict, benchmark = outputs
    assert folder.strip() == "(1438, 359)"  # train and test images written
    assert re.search(r"work/float: test accuracy 0\.9\d{3} \[0\.\d{4}, 0\.\d{4}\] on 359 "
                     r"images", train.replace(moved["work"], "work")), train
    exported = [l for l in export.splitlines() if ".tflite: " in l]
    assert len(exported) == 5 and all(re.search(r"vs float [+-]?\d+\.\d\d points \[", l)
                                      for l in exported), export
    lines = predict.splitlines()  # one line per image of test/7; a 5-epoch model gets most right
    assert len(lines) == 36 and all(re.match(r".*/7/\d+_\+0\.png: \d 0\.\d{3}, ", l)
                                    for l in lines), predict
    assert sum(re.match(r".*: 7 ", l) is not None for l in lines) >= 32, predict
    assert "## What to ship" in benchmark and "int8" in benchmark
    # The report's microcontroller hint, run as printed, builds this model (not the digits
    # into ./workdir) and updates the report, whose line then names the C array.
    hint = re.search(r"`(tftool-export --workdir=\S+ --export_dir=\S+ --micro)`", benchmark)
    assert hint and moved["work"] in hint.group(1), benchmark
    result = subprocess.run(shlex.split(hint.group(1)), cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "report.md: updated with the microcontroller figures" in result.stdout
    micro = os.listdir(os.path.join(moved["exported"], "micro"))
    assert micro and all(f.startswith("digits28_small_cnn_") for f in micro), micro
    report = open(os.path.join(moved["exported"], "report.md"), encoding="utf-8").read()
    assert re.search(r"\*\*Microcontroller\*\* .*: ship `\S+/micro/digits28_small_cnn_\w+"
                     r"_model_data\.cc`", report), report
    if "work" not in moved:  # the patterns above must have matched
        pytest.fail("the quick start's folders were not recognized")
