"""Converts every stage's model to .tflite: `tftool-export --workdir=W --export_dir=E`.

Writes EXPORT_DIR/<name>_<variant>.tflite, a JSON model card beside each, and labels.txt (one
class name a line, in output-index order), each atomically. A variant more than
--max_accuracy_drop below its reference model is not written (export/gate.py); the others
are, then the command exits 2 naming the refused ones, so `make export` fails.
"""
import sys

from tftool import UserError, chance
from tftool.benchmark import suite
from tftool.cli import flags as cli_flags, run as cli_run, shared
from tftool.export import owner

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + ("export_dir", "name", "variants", "calibration_steps",
                                "calibration_seed", "calibration_data", "max_accuracy_drop", "gate",
                                "inference_input_type", "inference_output_type", "rgb_input",
                                "output_kind", "selective_int8", "quantization_debugger", "onnx",
                                "micro", "micro_flash_kb", "micro_ram_kb", "allow_chance_accuracy")


def main(argv):
    del argv
    from tftool.export import driver, micro_export, onnx_export

    settings = shared.data_settings("export")
    if FLAGS.onnx:  # before any conversion: the extra may be missing
        from tftool import onnx_runtime

        onnx_runtime.require()
    variants = driver.resolve(FLAGS.workdir, FLAGS.variants)
    name = FLAGS.name or shared.default_name(FLAGS.workdir)
    owner.check(FLAGS.export_dir, FLAGS.workdir, name)  # before anything is written
    dataset = shared.load_data(settings)
    chance.refuse_export(FLAGS.workdir, dataset, FLAGS.allow_chance_accuracy)
    size = shared.image_size(dataset, settings)
    representative = driver.calibration(FLAGS.calibration_data, dataset, size,
                                        FLAGS.calibration_steps, FLAGS.calibration_seed)
    conversion = {k: FLAGS[k].value for k in ("rgb_input", "output_kind", "inference_input_type",
                                               "inference_output_type")}
    _, refused = driver.export(FLAGS.workdir, FLAGS.export_dir, name, dataset, size,
                               variants, representative, FLAGS.max_accuracy_drop,
                               conversion, FLAGS.selective_int8, FLAGS.gate,
                               debugger=FLAGS.quantization_debugger)
    owner.record(FLAGS.export_dir, FLAGS.workdir, name, settings["dataset"])
    problems = []
    if FLAGS.onnx:
        try:
            _, onnx_refused = onnx_export.export_onnx(
                FLAGS.workdir, FLAGS.export_dir, name, dataset, size, representative,
                FLAGS.max_accuracy_drop, FLAGS.gate)
            refused += onnx_refused
        except UserError as e:  # the .tflite files are written: name it, go on, exit 2
            problems.append(str(e))
            print(f"tftool-export: onnx: {e}", file=sys.stderr, flush=True)
    for _, reason in refused:
        print(f"tftool-export: {reason}", file=sys.stderr, flush=True)
    if FLAGS.micro:
        shipped = [v for v in variants if v not in dict(refused)]
        _, micro_problems = micro_export.export_micro(
            FLAGS.workdir, FLAGS.export_dir, name, dataset, size, shipped, representative,
            FLAGS.micro_flash_kb, FLAGS.micro_ram_kb)
        for line in micro_problems:
            print(f"tftool-export: micro: {line}", file=sys.stderr, flush=True)
        problems += micro_problems
        line = suite.refresh_report_line(FLAGS.workdir, FLAGS.export_dir, name)
        if line:
            print(line, flush=True)
    if problems and not refused:
        raise UserError(f"{len(problems)} micro/ONNX export(s) not written (see above); the "
                        f"other files were written")
    if refused:
        raise UserError(f"the accuracy gate refused {', '.join(v for v, _ in refused)} (more "
                        f"than {FLAGS.max_accuracy_drop * 100:g} point(s) below its reference "
                        f"model{', beyond noise' if FLAGS.gate == 'paired' else ''}: "
                        f"--gate={FLAGS.gate}); the other variants were "
                        f"written. Fix the variant, or pass --variants without it or a larger "
                        f"--max_accuracy_drop")


def cli_main():
    cli_run.entry_point("tftool-export", NAMES, main)
