import os

from conftest import error_lines, run_cli
from tftool.cli import common as cli


def test_make_keeps_absl_flagfile_and_drops_foreign_flags(capsys):
    argv = ["tftool-export", "--flagfile=recipes/mnist.flags", "--width=8", "--nowidth",
            "--workdir=w", "--helpfull"]
    assert cli.drop_foreign_flags(argv, "tftool-export") == [
        "tftool-export", "--flagfile=recipes/mnist.flags", "--workdir=w", "--helpfull"]
    assert "ignoring --width=8 (not a flag of tftool-export)" in capsys.readouterr().err


def test_flags_txt_does_not_replay_overwrite():
    from absl import flags

    values = flags.FlagValues()
    flags.DEFINE_string("workdir", "workdir", "", flag_values=values)
    flags.DEFINE_integer("epochs", 30, "", flag_values=values)
    flags.DEFINE_boolean("overwrite", False, "", flag_values=values)
    values(["prog", "--workdir=w", "--epochs=3", "--overwrite"])
    lines = cli.flags_text(values).splitlines()
    assert "--workdir=w" in lines and "--epochs=3" in lines
    assert not any("overwrite" in line for line in lines)


def test_quantize_refuses_pruned_without_preserve_sparsity(tmp_path):
    result = run_cli("quantize", f"--workdir={tmp_path}", "--from=pruned",
                     "--nopreserve_sparsity")
    assert result.returncode == 2
    assert "drop --nopreserve_sparsity" in error_lines(result.stderr)[-1]
    assert not os.listdir(tmp_path)
