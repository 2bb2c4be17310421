"""The command-line contract shared by every entry point: one meaning per flag name, short
mains, Make's shared flags, flags.txt."""
import glob
import importlib
import os
import subprocess
import sys

import pytest
from absl import flags

from conftest import REPO, error_lines, run_cli
from tftool import launch
from tftool.cli import flags as cli_flags, run as cli_run

ENTRY_POINTS = ("train", "quantize", "prune", "distill", "cluster", "export", "benchmark",
                "check", "predict")


def defined_flags(name):
    """{flag name: absl Flag} that entry point `name` defines, in a fresh FlagValues."""
    module = importlib.import_module(f"tftool.cli.{name}")
    values = cli_flags.command_flags(module)
    return {n: values[n] for n in values}


def meaning(flag):
    """What a flag means, defaults aside: its type, its help text and its allowed values."""
    values = getattr(flag.parser, "enum_values", None)
    return type(flag.parser).__name__, flag.help, tuple(values) if values else None


def test_a_flag_name_means_one_thing_in_every_entry_point():
    seen = {}
    for name in ENTRY_POINTS:
        for flag_name, flag in defined_flags(name).items():
            first = seen.setdefault(flag_name, (name, meaning(flag)))
            assert first[1] == meaning(flag), (
                f"--{flag_name} means {first[1]} in tftool-{first[0]} but {meaning(flag)} in "
                f"tftool-{name}")
    # the renames that gave --alpha and --seed one meaning each
    assert "alpha" not in defined_flags("distill") and "seed" not in defined_flags("export")
    assert "hard_label_weight" in defined_flags("distill")
    assert "calibration_seed" in defined_flags("export")


def test_no_entry_point_defines_flags_outside_the_table():
    for path in glob.glob(os.path.join(REPO, "tftool", "**", "*.py"), recursive=True):
        if path.endswith(os.path.join("cli", "flags.py")):
            continue
        assert "flags.DEFINE_" not in open(path).read(), path


def test_flag_tables_name_what_the_libraries_have():
    from tftool import models
    from tftool.train import fit, schedules, strategy

    assert cli_flags.MODEL_NAMES == tuple(models.MODELS)
    assert cli_flags.SCHEDULES == schedules.SCHEDULES
    assert cli_flags.STRATEGIES == strategy.STRATEGIES and cli_flags.OPTIMIZERS == fit.OPTIMIZERS
    from tftool import data
    from tftool.train import presets
    assert cli_flags.AUGMENTATIONS == data.AUGMENTATIONS
    assert cli_flags.PRESET_NAMES == presets.CHOICES
    from tftool import jobs
    from tftool.benchmark import timing
    from tftool.optimize import prune
    assert cli_flags.TIMINGS == tuple(timing.TIMING)
    assert cli_flags.TIMING_FLAGS == tuple(timing.TIMING["standard"])
    # tftool-prune leaves every kind of layer alone that --skip_layers names (jobs.DEFAULTS)
    assert tuple(jobs.DEFAULTS["prune"]["skip_layers"]) == prune.SKIP_KINDS


def test_entry_points_are_short():
    for name in ENTRY_POINTS:
        lines = open(os.path.join(REPO, "tftool", "cli", f"{name}.py")).read().splitlines()
        code = [l for l in lines if l.strip() and not l.lstrip().startswith("#")]
        assert len(code) <= 75, (name, len(code))  # docstring + imports + a ≤ 40-line main


def test_make_keeps_absl_flagfile_and_drops_foreign_flags(capsys, monkeypatch):
    values = flags.FlagValues()
    cli_flags.define(("workdir", "export_dir"), flag_values=values)
    monkeypatch.setattr(cli_run, "FLAGS", values)
    argv = ["tftool-export", "--flagfile=recipes/mnist.flags", "--width=8", "--nowidth",
            "--workdir=w", "--helpfull"]
    assert cli_run.drop_foreign_flags(argv, "tftool-export") == [
        "tftool-export", "--flagfile=recipes/mnist.flags", "--workdir=w", "--helpfull"]
    assert "ignoring --width=8 (not a flag of tftool-export)" in capsys.readouterr().err


def test_flags_txt_does_not_replay_overwrite():
    values = flags.FlagValues()
    cli_flags.define(("workdir", "epochs", "overwrite"), {"epochs": 3}, flag_values=values)
    values(["prog", "--workdir=w", "--epochs=3", "--overwrite"])
    lines = cli_flags.flags_text(values).splitlines()
    assert "--workdir=w" in lines and "--epochs=3" in lines
    assert not any("overwrite" in line for line in lines)


def test_quantize_refuses_pruned_without_preserve_sparsity(tmp_path):
    from inprocess import run_main

    result = run_main("quantize", f"--workdir={tmp_path}", "--from=pruned",
                      "--nopreserve_sparsity")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("drop --nopreserve_sparsity")
    assert not os.listdir(tmp_path)


def test_help_lists_each_entry_points_own_flags():
    """absl's --help prints the key flags of sys.argv[0]'s module: define() registers the
    entry point's flags (and --verbosity) there, not TensorFlow's or absl's others."""
    from absl import logging  # noqa: F401  (defines --verbosity in the global FLAGS)

    for name in ENTRY_POINTS:
        module = importlib.import_module(f"tftool.cli.{name}")
        values = flags.FlagValues()
        values["verbosity"] = flags.FLAGS["verbosity"]  # as in the real FLAGS
        cli_flags.define(module.NAMES, getattr(module, "DEFAULTS", None), values,
                         key_module=f"/bin/tftool-{name}")
        text = values.module_help(f"/bin/tftool-{name}")
        for flag_name in module.NAMES:
            assert f"--{flag_name}" in text or f"--[no]{flag_name}" in text, (name, flag_name)
        assert "--verbosity" in text and "--tpu" not in text and "--helpfull" not in text


def test_the_console_script_help_lists_its_flags_and_stays_quiet():
    import subprocess

    script = os.path.join(REPO, ".venv", "bin", "tftool-prune")
    command = [script] if os.path.exists(script) else [
        __import__("sys").executable, "-m", "tftool", "prune"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]  # absl's own --help exits 1
    out = result.stdout + result.stderr
    assert out.startswith("Magnitude pruning of the float model")  # the module's docstring
    assert "  --target_sparsity: " in out
    assert "(default: '0.7')" in out.split("  --target_sparsity: ")[1].split("  --")[0]
    assert "Try --helpfull" in out or "--helpfull" not in out.split("flags:")[1]
    assert "oneDNN" not in out and "cuda" not in out.lower()
    # a bad flag before --help is still an error, not help
    bad = subprocess.run([*command, "--epochs=abc", "--help"], capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert bad.returncode == 1 and "FATAL Flags parsing error" in bad.stderr, bad.stderr[-2000:]


# ---- python -m tftool, light imports, renamed flags ------------------------------------------
LIGHT = """
import sys
module = __import__("tftool.cli.{tool}", fromlist=["cli_main"])
imported = "tensorflow" in sys.modules
sys.argv = ["tftool-{tool}", "--help"]
try:
    module.cli_main()
except SystemExit as e:
    code = e.code
print("RESULT", imported, "tensorflow" in sys.modules, code)
"""


@pytest.mark.parametrize("tool", launch.TOOLS)
def test_cli_modules_and_their_help_import_no_tensorflow(tool):
    """`import tftool.cli.<tool>` and its --help load no TensorFlow (heavy imports live inside
    main), so --help and `python -m tftool` answer in a fraction of a second."""
    result = subprocess.run([sys.executable, "-c", LIGHT.format(tool=tool)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "RESULT False False 0", (
        result.stdout[-500:], result.stderr[-2000:])


def test_python_m_tftool_lists_the_commands_and_refuses_an_unknown_one():
    code = ("import runpy, sys; sys.argv = ['tftool']; "
            "runpy.run_module('tftool', run_name='__main__'); "
            "print('tensorflow' in sys.modules)")
    listed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("usage: python -m tftool <command>") and lines[-1] == "False"
    for command in ("train", "quantize", "prune", "export", "benchmark", "check", "import"):
        assert any(line.split()[:1] == [command] for line in lines), command
    assert "import_model" not in listed.stdout  # one name per command: tftool-import's
    helped = subprocess.run([sys.executable, "-m", "tftool", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and helped.stdout == listed.stdout.rsplit("False", 1)[0]
    unknown = subprocess.run([sys.executable, "-m", "tftool", "prnue", "--workdir=w"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.splitlines() == [
        "python -m tftool: error: unknown command 'prnue'; use one of train, quantize, prune, "
        "distill, cluster, export, benchmark, check, predict, search, import"]
    imported = run_cli("import", "--help")  # tftool-import, by its command name
    assert imported.returncode == 0 and imported.stdout.startswith("Imports a trained Keras")


def test_the_old_stages_flag_is_one_line_naming_num_stages(tmp_path):
    from inprocess import run_main

    result = run_cli("train", f"--workdir={tmp_path}", "--stages=2")  # before any work
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        "tftool-train: error: --stages is now --num_stages: pass --num_stages=2"]
    assert not os.listdir(tmp_path)
    flagfile = tmp_path / "flags.txt"  # a flags.txt written before the rename
    flagfile.write_text("--model=small_cnn\n--stages=3\n")
    result = run_main("check", f"--flagfile={flagfile}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tftool-check: error: --stages is now --num_stages: pass --num_stages=3")
    values = flags.FlagValues()
    cli_flags.define(("num_stages",), flag_values=values, key_module="/bin/tftool-train")
    assert "--num_stages" in values.module_help("/bin/tftool-train")
    assert "--stages" not in values.module_help("/bin/tftool-train")


def test_num_stages_is_recorded_as_stages_so_older_workdirs_resume(tmp_path):
    """config.json keeps small_cnn's builder argument name ("stages", as width and alpha keep
    theirs): a workdir made before the rename resumes; a different depth names the flag."""
    from types import SimpleNamespace

    from tftool import UserError, jobs, stage_runner

    job = jobs.float_job(None, SimpleNamespace(num_classes=3), (8, 8, 1), {}, num_stages=2)
    assert job.settings["stages"] == 2 and "num_stages" not in job.settings
    directory = str(tmp_path)
    stage_runner.check_config(directory, job.settings)  # as an older tftool recorded it
    stage_runner.check_config(directory, job.settings)  # the same run again: accepted
    deeper = jobs.float_job(None, SimpleNamespace(num_classes=3), (8, 8, 1), {}, num_stages=3)
    with pytest.raises(UserError, match=r"was made with --num_stages=2, not 3"):
        stage_runner.check_config(directory, deeper.settings)
