"""tftool's Python API: each command as a function, for notebooks and scripts.

    from tftool import api
    metrics = api.train(workdir="work", dataset="digits", epochs=2)
    cards = api.export(workdir="work", export_dir="exported")

Each function runs its entry point's own `main` (tftool/cli/<command>.py) in this process:
the keywords are that command's flags, defined from the one flag table (cli/flags.py
FLAG_SPECS) into a fresh absl FlagValues and parsed from the `--name=value` arguments the
command line would have, so defaults, presets and checks are the command's own, and no value
stays behind for the next call. A function returns what the command wrote (a stage's
metrics.json, the exported files' model cards, the benchmark's rows) and raises
tftool.UserError with the one line the command would print. Its docstring is made from the
same table and module docstring as the command's `--help` (tests/test_api.py checks both).

The functions live here, not as tftool.train, tftool.export, ...: those names are tftool's
subpackages and `python -m` modules, which Python's import system binds on the package as
soon as they are imported. Each function is built on first use (module `__getattr__`), so
`import tftool.api` and `help(api.train)` import TensorFlow only where the command's module
does. Calls are serialized: the entry points read module-level FLAGS.
"""
import dataclasses
import importlib
import importlib.util
import inspect
import os
import textwrap
import threading
from typing import Any, Callable, Optional, Tuple

from tftool import UserError


@dataclasses.dataclass(frozen=True)
class Command:
    """One API function: the entry point it runs and what it returns.

    module: tftool.cli.<module>, which has NAMES, main(argv) and optionally DEFAULTS.
    prog: the console script, as its errors and --help name it.
    summary: the docstring's first line. returns: its Returns section.
    result: called with the parsed FlagValues after main ran (and the positional
      arguments); its value is the function's.
    positional: the name of a leading positional parameter (a list of paths), or None.
    call: replaces main (for a command whose main prints instead of returning):
      call(flag_values, positional values) -> result.
    exclude: flags of the command the function does not take (the ones only about printing).
    """
    module: str
    prog: str
    summary: str
    returns: str
    result: Optional[Callable[..., Any]] = None
    positional: Optional[str] = None
    call: Optional[Callable[..., Any]] = None
    exclude: Tuple[str, ...] = ()


def _stage_metrics(stage_of):
    """A Command.result: WORKDIR/<stage_of(flag values)>/metrics.json as a dict (None when
    the stage wrote none: skipped under make, TFTOOL_SHARED_FLAGS=1)."""
    def result(values, _):
        from tftool import stages

        return stages.read_metrics(values.workdir, stage_of(values))
    return result


def _qat_stage(values):
    from tftool import jobs

    source = values["from"].value
    pruned = source in ("pruned", "pruned_clustered")
    preserve = pruned if values.preserve_sparsity is None else values.preserve_sparsity
    return jobs.QAT_OUTPUTS[(source, preserve)][0]


def _cluster_stage(values):
    from tftool import jobs

    return jobs.CLUSTER_OUTPUTS[values["from"].value]


def _export_name(values):
    from tftool.cli import shared

    return values.name or shared.default_name(values.workdir)


def _cards(values, _):
    """{variant: model card + "path", "size_bytes"} of EXPORT_DIR's .tflite files of this
    model."""
    from tftool import fileio
    from tftool.benchmark import suite

    cards = {}
    for variant, path in suite.exported_files(values.export_dir, _export_name(values)).items():
        card = fileio.read_json_object(os.path.splitext(path)[0] + ".json") or {}
        cards[variant] = {**card, "path": path, "size_bytes": os.path.getsize(path)}
    return cards


def _benchmark_rows(values, _):
    from tftool import fileio

    return fileio.read_json(os.path.join(values.export_dir, "benchmark.json"))


def _search_summary(values, _):
    from tftool import fileio

    return fileio.read_json_object(os.path.join(values.workdir, "search", "summary.json"))


def _predict(values, images):
    """tftool-predict's main without its printing: the classify results themselves."""
    from tftool import classify

    if not values.tflite:
        raise UserError("tflite=PATH.tflite is required (an export of tftool-export)")
    images = [images] if isinstance(images, (str, os.PathLike)) else list(images or ())
    if not images:
        raise UserError("no image given; pass a list of image files or folders")
    return classify.classify(values.tflite, [os.fspath(i) for i in images], values.top_k,
                             values.num_threads)


_STAGE = ("dict: WORKDIR/{stage}/metrics.json, the stage's record: test_accuracy and "
          "test_accuracy_interval (fractions, 95% Wilson interval), validation_accuracy, "
          "test_examples, history (per epoch: loss, accuracy, images_per_second), the resolved "
          "settings. A complete stage is not trained again (overwrite=True does): "
          "the record of the earlier run is returned.")

COMMANDS = {
    "train": Command(
        "train", "tftool-train", "Trains the float model into WORKDIR/float (tftool-train).",
        _STAGE.format(stage="float"), _stage_metrics(lambda v: "float")),
    "import_model": Command(
        "import_model", "tftool-import", "Imports a saved model as WORKDIR/float "
        "(tftool-import).", _STAGE.format(stage="float"), _stage_metrics(lambda v: "float")),
    "quantize": Command(
        "quantize", "tftool-quantize", "Quantization-aware training of a stage's model "
        "(tftool-quantize).", _STAGE.format(stage="qat") + " The stage follows from_: qat, "
        "pqat, cqat or pcqat.", _stage_metrics(_qat_stage)),
    "prune": Command(
        "prune", "tftool-prune", "Magnitude-prunes the float model into WORKDIR/pruned "
        "(tftool-prune).", _STAGE.format(stage="pruned") + " pruned_2by4 with "
        "sparsity_m_by_n; metrics.json adds sparsity and layer_sparsity (fractions).",
        _stage_metrics(lambda v: "pruned_2by4" if v.sparsity_m_by_n else "pruned")),
    "cluster": Command(
        "cluster", "tftool-cluster", "Weight-clusters the float (or pruned) model "
        "(tftool-cluster).", _STAGE.format(stage="clustered") + " pruned_clustered with "
        "from_='pruned'.", _stage_metrics(_cluster_stage)),
    "distill": Command(
        "distill", "tftool-distill", "Distills a small student from a teacher into "
        "WORKDIR/student (tftool-distill).", _STAGE.format(stage="student") + " With "
        "baseline=True the baseline's is WORKDIR/student_baseline/metrics.json.",
        _stage_metrics(lambda v: "student")),
    "export": Command(
        "export", "tftool-export", "Converts every stage's model to .tflite with a model card "
        "(tftool-export).", "dict: {variant: model card} for every EXPORT_DIR/<name>_<variant>"
        ".tflite of this model (this export's and earlier ones), in the registry's order; "
        "each card is the <name>_<variant>.json beside the file (input: dtype, scale, "
        "zero_point; test_accuracy and test_accuracy_interval, fractions, 95%; "
        "accuracy_gate: the gate's verdict) plus \"path\", the .tflite file's path, and "
        "\"size_bytes\", its size in bytes.", _cards),
    "benchmark": Command(
        "benchmark", "tftool-benchmark", "Measures the float model and every exported .tflite "
        "(tftool-benchmark).", "list of dict: EXPORT_DIR/benchmark.json, one row per model × "
        "threads × batch × XNNPACK: name, variant, accuracy (a fraction, with accuracy_low and "
        "accuracy_high), latency_ms_p50/p90/p99 (milliseconds), throughput_ips (images per "
        "second), size_bytes, num_threads, batch_size, xnnpack. EXPORT_DIR/report.md (printed "
        "too) says which file to ship.", _benchmark_rows),
    "search": Command(
        "search", "tftool-search", "Searches for the most accurate model within a budget "
        "(tftool-search).", "dict: WORKDIR/search/summary.json: rows (every trial: candidate, "
        "validation_accuracy, a fraction; latency_ms_p50, milliseconds; size_bytes, "
        "flash_bytes, arena_bytes; feasible), front, chosen (the trial to ship, or None), "
        "rejected_before_training, training_seconds_saved.", _search_summary),
    "predict": Command(
        "predict", "tftool-predict", "Classifies image files with an exported .tflite "
        "(tftool-predict).", "list of dict: one per image, in order: {\"image\": path, "
        "\"top_k\": [{\"label\", \"index\", \"probability\" (0 to 1)}, ...]}, or {\"image\", "
        "\"error\"} for a file that could not be read (no exception: the others are "
        "classified).", positional="images", call=_predict, exclude=("json",)),
}

_LOCK = threading.RLock()
_quieted = []


def available():
    """The names of COMMANDS whose entry point this tftool has, in COMMANDS' order."""
    return [n for n, c in COMMANDS.items()
            if importlib.util.find_spec(f"tftool.cli.{c.module}") is not None]


def __getattr__(name):
    if name not in COMMANDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in available():
        raise AttributeError(f"tftool.api.{name}: this tftool has no {COMMANDS[name].prog}")
    function = _function(name)
    globals()[name] = function
    return function


def __dir__():
    return sorted(set(globals()) | set(available()))


def parameter_name(flag):
    """The keyword of flag `flag`: its name, with a trailing _ for a Python keyword (from_)."""
    import keyword

    return f"{flag}_" if keyword.iskeyword(flag) else flag


def _names(command, module):
    return [n for n in module.NAMES if n not in command.exclude]


def _function(name):
    """Builds the API function of COMMANDS[name]: signature and docstring from its flags."""
    from tftool.cli.flags import command_flags

    command = COMMANDS[name]
    module = importlib.import_module(f"tftool.cli.{command.module}")
    names = _names(command, module)
    values = command_flags(module, names)
    params = []
    if command.positional:
        params.append(inspect.Parameter(command.positional,
                                        inspect.Parameter.POSITIONAL_OR_KEYWORD))
    params += [inspect.Parameter(parameter_name(n), inspect.Parameter.KEYWORD_ONLY,
                                 default=values[n].default) for n in names]

    def function(*args, **kwargs):
        return _call(command, module, names, args, kwargs)

    function.__name__ = function.__qualname__ = name
    function.__module__ = __name__
    function.__signature__ = inspect.Signature(params)
    function.__doc__ = _docstring(command, module, names, values)
    return function


def _docstring(command, module, names, values):
    """The docstring of `command`'s function: its summary, the entry point's module docstring
    (what `--help` prints above the flags), each flag of `names` with the help text and
    default `--help` prints (`values`: the defined flags), then Returns and Raises."""
    def wrap(text, indent="  ", more="    "):
        return textwrap.wrap(text, 88, initial_indent=indent, subsequent_indent=more,
                             break_on_hyphens=False, break_long_words=False)

    lines = [command.summary, "",
             f"Runs {command.prog}'s main in this process. What `{command.prog} --help` says:",
             "", textwrap.dedent(module.__doc__ or "").strip(), "",
             *wrap(f"Every keyword is the flag of the same name{_renamed(names)}; leaving it "
                   f"out (or None) keeps its default; True/False are --name/--noname; a list "
                   f"is a comma-separated list.", "", ""), "", "Args:"]
    if command.positional:
        lines += wrap(f"{command.positional}: image files or folders (searched recursively): "
                      f"a list of paths, or one path.")
    for n in names:
        flag = values[n]
        default = f" (default: {flag.default_as_str})" if flag.default_as_str else ""
        lines += wrap(f"{parameter_name(n)}: {flag.help}{default}")
    lines += ["", "Returns:", *wrap(command.returns),
              "", "Raises:",
              *wrap(f"TypeError: a keyword that is not a flag of {command.prog} (the message "
                    f"lists its flags)."),
              *wrap(f"tftool.UserError: what {command.prog} reports as its one-line error (a "
                    f"flag value its checks refuse included), with the same message."),
              *wrap("OSError: the file system (a file where a folder belongs, a folder that "
                    "cannot be written, a full disk).")]
    return "\n".join(lines)


def _renamed(names):
    renamed = [f"{parameter_name(n)} is --{n}" for n in names if parameter_name(n) != n]
    return f" ({', '.join(renamed)})" if renamed else ""


def argv(prog, names, kwargs):
    """The command line `prog --name=value ...` of keyword arguments `kwargs`.

    Raises: TypeError naming the keywords that are not flags of `prog` and the ones that are.
    """
    flag_of = {parameter_name(n): n for n in names}
    flag_of.update({n: n for n in names})  # {"from": ...} works too
    unknown = sorted(k for k in kwargs if k not in flag_of)
    if unknown:
        raise TypeError(f"{', '.join(unknown)}: not a flag of {prog}; its flags are "
                        f"{', '.join(parameter_name(n) for n in names)}")
    args = [prog]
    for key, value in kwargs.items():
        flag = flag_of[key]
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no{flag}")
        elif isinstance(value, (list, tuple)):
            args.append(f"--{flag}={','.join(str(v) for v in value)}")
        else:
            value = os.fspath(value) if isinstance(value, os.PathLike) else value
            args.append(f"--{flag}={value}")
    return args


def _call(command, module, names, args, kwargs):
    from absl import flags
    from tftool.cli.flags import command_flags
    from tftool.cli.run import quiet_logs, using_flags

    positional = None
    if command.positional:
        if len(args) > 1 or (args and command.positional in kwargs):
            raise TypeError(f"{command.module}() takes one positional argument, "
                            f"{command.positional}")
        positional = args[0] if args else kwargs.pop(command.positional, None)
    elif args:
        raise TypeError(f"{command.module}() takes keyword arguments only (its flags)")
    command_line = argv(command.prog, names, kwargs)
    with _LOCK:
        values = command_flags(module, names)
        try:
            values(command_line)
        except flags.Error as e:  # a value a flag's type or check refuses
            raise UserError(str(e)) from None
        if not _quieted:  # as the console script does without --verbosity
            quiet_logs()
            _quieted.append(True)
        with using_flags(module, values):
            if command.call is not None:
                return command.call(values, positional)
            module.main([command.prog])
            return command.result(values, positional) if command.result else None
