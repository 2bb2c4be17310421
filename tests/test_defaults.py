"""Each default has one home: the float model's training settings in
train/presets.py, every later stage's in jobs.DEFAULTS, the timing in benchmark/timing.py
TIMING. The per-stage flags of cli/flags.py hold no value; every entry point hands `define` its
values from the home, and no other module (or the Makefile) writes one again."""
import ast
import dataclasses
import glob
import importlib
import inspect
import os
import re

import pytest
from absl import flags

from conftest import REPO
from tftool import jobs
from tftool.benchmark import timing
from tftool.cli import flags as cli_flags
from tftool.train import presets

PER_STAGE = tuple(n for n, spec in cli_flags.FLAG_SPECS.items() if spec.per_stage)
# The modules that may write these defaults: their homes.
HOMES = ("tftool/train/presets.py", "tftool/jobs.py", "tftool/benchmark/timing.py")
# A per-stage name written with a value outside the homes that is not a stage's default,
# each with the reason it is another thing.
ALLOWED = {
    ("tftool/data/input_pipeline.py", "augment"): "pipeline(): a bare input pipeline "
        "(evaluation, calibration) does not augment; training passes TrainConfig.augment",
    ("tftool/data/input_pipeline.py", "augmentation"): "pipeline(): the policy of a bare "
        "call; training passes TrainConfig.augmentation",
    ("tftool/data/augment.py", "augment"): "augmenter(): the layers of a bare call augment "
        "(it exists to); the pipeline passes its own",
    ("tftool/data/augment.py", "augmentation"): "augmenter(): the policy of a bare call; the "
        "pipeline passes the stage's",
    ("tftool/train/losses.py", "label_smoothing"): "0 = the plain cross-entropy, the loss's "
        "neutral value; fit passes the stage's",
    ("tftool/train/callbacks.py", "min_seconds"): "EpochLine: seconds between two log lines "
        "of an epoch, not the benchmark's timing",
}
# Flags whose default differs between entry points but is not a stage's setting.
NOT_PER_STAGE = {
    "threads": "tftool-benchmark times 1 and all cores (None); tftool-search one thread count, "
               "written once, in cli/search.py",
}
# Entry points whose per-stage training flags wait for a preset chosen when they run.
PRESET_COMMANDS = ("train",)


def entry_points():
    """{name: module} of every tftool/cli module that defines flags (has NAMES)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "tftool", "cli", "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        module = importlib.import_module(f"tftool.cli.{name}")
        if hasattr(module, "NAMES"):
            found[name] = module
    return found


def effective_defaults(module):
    """{flag: default} of an entry point, as `define` gives it."""
    values = cli_flags.command_flags(module)
    return {n: values[n].default for n in module.NAMES}


def test_a_per_stage_flag_has_no_value_in_the_table():
    assert {"epochs", "learning_rate", "lr_schedule", "warmup_epochs", "min_seconds",
            "timing"} <= set(PER_STAGE)
    for name in PER_STAGE:
        assert cli_flags.FLAG_SPECS[name].default is None, name


def test_define_refuses_a_per_stage_flag_without_the_commands_default():
    with pytest.raises(ValueError, match=r"--epochs, --min_seconds need the command's default"):
        cli_flags.define(("workdir", "epochs", "min_seconds"), {}, flags.FlagValues())
    values = flags.FlagValues()
    cli_flags.define(("epochs",), {"epochs": 7}, values)
    assert values["epochs"].default == 7


def test_a_default_that_differs_between_commands_is_per_stage():
    seen = {}
    for command, module in entry_points().items():
        for name, value in effective_defaults(module).items():
            seen.setdefault(name, {})[command] = value
    for name, by_command in seen.items():
        if len({repr(v) for v in by_command.values()}) > 1:
            assert name in PER_STAGE or name in NOT_PER_STAGE, (name, by_command)


def test_every_command_takes_its_per_stage_defaults_from_their_home():
    for command, module in entry_points().items():
        taken = [n for n in module.NAMES if n in PER_STAGE]
        if not taken:
            continue
        defaults = module.DEFAULTS
        timed = [n for n in taken if n == "timing" or n in cli_flags.TIMING_FLAGS]
        trained = [n for n in taken if n not in timed]
        if timed:  # the timing preset the command names, every field from TIMING
            assert defaults["timing"] in timing.TIMING, command
            preset = timing.TIMING[defaults["timing"]]
            assert {n: defaults[n] for n in cli_flags.TIMING_FLAGS} == preset, command
        if not trained:
            continue
        if command in PRESET_COMMANDS:  # None: the preset's, chosen when it runs
            assert set(trained) <= set(presets.FIELDS), command
            assert all(defaults[n] is None for n in trained), command
        else:  # the very dict of jobs.DEFAULTS, so nothing is copied
            assert any(defaults is stage for stage in jobs.DEFAULTS.values()), command
            assert set(trained) <= set(defaults), command


def test_the_training_defaults_of_each_stage_are_complete_and_checked_by_the_table():
    training = [n for n in cli_flags.TRAINING_FLAGS if n in PER_STAGE]
    for stage in ("quantize", "prune", "cluster", "distill"):
        assert set(training) <= set(jobs.DEFAULTS[stage]), stage
        for name, value in jobs.DEFAULTS[stage].items():
            check = cli_flags.FLAG_SPECS[name].check
            assert value is None or check is None or check(value), (stage, name)
    for name, value in jobs.DEFAULTS["float"].items():
        assert getattr(presets.DIGITS, name) == value


def test_the_libraries_defaults_come_from_the_homes():
    from tftool.train import fit

    fields = {f.name: f for f in dataclasses.fields(fit.TrainConfig)}
    for name in ("epochs", "learning_rate", "lr_schedule"):  # each stage's own: required
        assert fields[name].default is dataclasses.MISSING, name
    for name in set(fields) & set(presets.FIELDS) - {"epochs", "learning_rate", "lr_schedule",
                                                      "hflip"}:
        assert fields[name].default == presets.FINE_TUNING[name], name
    assert jobs.FINE_TUNING is presets.FINE_TUNING
    assert fit.REFERENCE_BATCH_SIZE == presets.FINE_TUNING["per_replica_batch_size"]
    signature = inspect.signature(timing.time_calls)
    assert {n: signature.parameters[n].default
            for n in cli_flags.TIMING_FLAGS} == timing.TIMING["standard"]
    assert timing.resolve("quick", {"min_runs": 3, "other": 1}) == {
        **timing.TIMING["quick"], "min_runs": 3}


def test_timing_fills_the_timing_flags_not_given(monkeypatch):
    """make's benchmark (--timing=quick) times as the search's trials do; a flag given wins."""
    from tftool.cli import benchmark, search, shared

    def resolved(module, *argv):
        values = cli_flags.command_flags(module)
        values(["prog", *argv])
        monkeypatch.setattr(shared, "FLAGS", values)
        return shared.timing_settings()

    assert resolved(benchmark) == timing.TIMING["standard"]
    assert resolved(benchmark, "--timing=quick") == resolved(search) == timing.TIMING["quick"]
    assert resolved(benchmark, "--timing=quick", "--min_runs=7") == {
        **timing.TIMING["quick"], "min_runs": 7}
    assert resolved(search, "--timing=standard", "--warmup_seconds=0") == {
        **timing.TIMING["standard"], "warmup_seconds": 0.0}


def _literal(node):
    """Whether `node` is a literal other than None (None: no value, decided elsewhere)."""
    try:
        return ast.literal_eval(node) is not None
    except ValueError:
        return False


def _constant_name(target):
    """The per-stage default a constant's name ends in (NAMED_TEACHER_EPOCHS: epochs; not a
    bare AUGMENTATION, rebuild.py's tuple of layer classes)."""
    if isinstance(target, ast.Name):
        for name in PER_STAGE:
            if target.id.endswith("_" + name.upper()):
                return name
    return None


def written_defaults(tree):
    """(name, line) of every per-stage default written with a literal value in `tree`: a dict
    entry (a Spec's default too), a keyword default, a dataclass field, a dict(...) keyword or
    a module constant named after one."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if not (isinstance(key, ast.Constant) and key.value in PER_STAGE):
                    continue
                if (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Spec"
                        and len(value.args) > 1):
                    value = value.args[1]
                if _literal(value):
                    found.append((key.value, node.lineno))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args.posonlyargs + node.args.args
            pairs = list(zip(args[len(args) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d]
            found += [(a.arg, d.lineno) for a, d in pairs if a.arg in PER_STAGE and _literal(d)]
        elif isinstance(node, ast.ClassDef):
            found += [(s.target.id, s.lineno) for s in node.body
                      if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                      and s.target.id in PER_STAGE and s.value is not None
                      and _literal(s.value)]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
            found += [(k.arg, node.lineno) for k in node.keywords
                      if k.arg in PER_STAGE and _literal(k.value)]
        elif isinstance(node, ast.Assign) and _literal(node.value):
            found += [(_constant_name(t), node.lineno) for t in node.targets
                      if _constant_name(t)]
    return found


def test_no_module_writes_a_stage_default_outside_its_home():
    written = []
    for path in sorted(glob.glob(os.path.join(REPO, "tftool", "**", "*.py"), recursive=True)):
        relative = os.path.relpath(path, REPO).replace(os.sep, "/")
        if relative in HOMES:
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), relative)
        written += [f"{relative}:{line}: {name}" for name, line in written_defaults(tree)
                    if (relative, name) not in ALLOWED]
    assert not written, ("defaults written outside their home (train/presets.py, jobs.py, "
                         "benchmark/timing.py); read them from there:\n" + "\n".join(written))


def test_every_allowed_exception_is_still_there():
    """An exception whose code went away is dropped from ALLOWED, so the list stays true."""
    for (relative, name), reason in ALLOWED.items():
        with open(os.path.join(REPO, relative), encoding="utf-8") as f:
            tree = ast.parse(f.read(), relative)
        assert name in {n for n, _ in written_defaults(tree)}, (relative, name, reason)


def test_the_makefile_names_presets_not_values():
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        text = f.read()
    names = "|".join(n for n in PER_STAGE if n != "timing")
    # --name=VALUE, or a boolean's --name / --noname; --name=$(VARIABLE) passes the user's
    written = re.findall(rf"--(?:no)?(?:{names})(?:=(?!\$\()\S*|(?![\w=]))", text)
    assert not written, written  # a value belongs in its home; make passes --timing=NAME
    assert "--timing=quick" in text


def test_a_list_default_is_a_copy_so_a_run_cannot_change_its_home():
    """absl keeps a list default by reference: `define` hands it a copy of the home's list."""
    module = importlib.import_module("tftool.cli.prune")
    values = cli_flags.command_flags(module)
    values(["tftool-prune"])
    home = jobs.DEFAULTS["prune"]["skip_layers"]
    assert values.skip_layers == home and values.skip_layers is not home
    values.skip_layers.append("dense")
    assert "dense" not in jobs.DEFAULTS["prune"]["skip_layers"]
