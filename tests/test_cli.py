"""The command-line contract shared by every entry point: one meaning per flag name, short
mains, Make's shared flags, flags.txt."""
import glob
import importlib
import os

from absl import flags

from conftest import REPO
from tftool.cli import common

ENTRY_POINTS = ("train", "quantize", "prune", "distill", "cluster", "export", "benchmark",
                "check", "predict")


def defined_flags(name):
    """{flag name: absl Flag} that entry point `name` defines, in a fresh FlagValues."""
    module = importlib.import_module(f"tftool.cli.{name}")
    values = flags.FlagValues()
    common.define(module.NAMES, getattr(module, "DEFAULTS", None), values)
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
        if path.endswith(os.path.join("cli", "common.py")):
            continue
        assert "flags.DEFINE_" not in open(path).read(), path


def test_flag_tables_name_what_the_libraries_have():
    from tftool import models
    from tftool.train import fit, schedules, strategy

    assert common.MODEL_NAMES == tuple(models.MODELS)
    assert common.SCHEDULES == schedules.SCHEDULES
    assert common.STRATEGIES == strategy.STRATEGIES and common.OPTIMIZERS == fit.OPTIMIZERS
    from tftool import data
    from tftool.train import presets
    assert common.AUGMENTATIONS == data.AUGMENTATIONS
    assert common.PRESET_NAMES == presets.CHOICES


def test_entry_points_are_short():
    for name in ENTRY_POINTS:
        lines = open(os.path.join(REPO, "tftool", "cli", f"{name}.py")).read().splitlines()
        code = [l for l in lines if l.strip() and not l.lstrip().startswith("#")]
        assert len(code) <= 75, (name, len(code))  # docstring + imports + a ≤ 40-line main


def test_make_keeps_absl_flagfile_and_drops_foreign_flags(capsys, monkeypatch):
    values = flags.FlagValues()
    common.define(("workdir", "export_dir"), flag_values=values)
    monkeypatch.setattr(common, "FLAGS", values)
    argv = ["tftool-export", "--flagfile=recipes/mnist.flags", "--width=8", "--nowidth",
            "--workdir=w", "--helpfull"]
    assert common.drop_foreign_flags(argv, "tftool-export") == [
        "tftool-export", "--flagfile=recipes/mnist.flags", "--workdir=w", "--helpfull"]
    assert "ignoring --width=8 (not a flag of tftool-export)" in capsys.readouterr().err


def test_flags_txt_does_not_replay_overwrite():
    values = flags.FlagValues()
    common.define(("workdir", "epochs", "overwrite"), flag_values=values)
    values(["prog", "--workdir=w", "--epochs=3", "--overwrite"])
    lines = common.flags_text(values).splitlines()
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
        common.define(module.NAMES, getattr(module, "DEFAULTS", None), values,
                      key_module=f"/bin/tftool-{name}")
        text = values.module_help(f"/bin/tftool-{name}")
        for flag_name in module.NAMES:
            assert f"--{flag_name}" in text or f"--[no]{flag_name}" in text, (name, flag_name)
        assert "--verbosity" in text and "--tpu" not in text and "--helpfull" not in text


def test_the_console_script_help_lists_its_flags_and_stays_quiet():
    import subprocess

    script = os.path.join(REPO, ".venv", "bin", "tftool-prune")
    command = [script] if os.path.exists(script) else [
        __import__("sys").executable, "-m", "tftool.prune"]
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
