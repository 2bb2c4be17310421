"""Measures the float Keras model and every exported .tflite: `tftool-benchmark`.

Example: python -m tftool benchmark --workdir=workdir --export_dir=exported
Accuracy, agreement, size and latency per --threads × --batch_sizes × --xnnpack setting,
timed as --timing says (standard: benchmark_model's defaults; quick: make benchmark's);
writes EXPORT_DIR/benchmark.{json,md}, report.{md,png} and the model cards' figures
(benchmark/suite.py), and prints report.md.
"""
from tftool.benchmark import suite, timing
from tftool.cli import flags as cli_flags, run as cli_run, shared
from tftool.export import owner

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + ("export_dir", "name", "threads", "batch_sizes", "xnnpack",
                                "timing", *cli_flags.TIMING_FLAGS, "max_cv", "memory")
DEFAULTS = timing.flag_defaults("standard")  # benchmark_model's timing (benchmark/timing.py)


def main(argv):
    del argv
    threads = sorted({int(v) for v in FLAGS.threads or (1, suite.CORES)})
    batch_sizes = sorted({int(v) for v in FLAGS.batch_sizes})
    xnnpack = [v == "on" for v in dict.fromkeys(FLAGS.xnnpack)]
    settings = shared.timing_settings()
    timing.set_tf_threads(max(threads))  # before TensorFlow's first op (accuracy pass only)
    data_settings = shared.data_settings("benchmark")
    name = FLAGS.name or shared.default_name(FLAGS.workdir)
    owner.check(FLAGS.export_dir, FLAGS.workdir, name, "tftool-benchmark")
    suite.exported_files(FLAGS.export_dir, name)  # no exports: one line before loading data
    dataset = shared.load_data(data_settings)
    size = shared.image_size(dataset, data_settings)
    load_before = suite.machine()["load_average"]
    rows = suite.measure_all(FLAGS.workdir, FLAGS.export_dir, name, dataset, size, threads,
                             batch_sizes, xnnpack, settings, FLAGS.max_cv, FLAGS.memory)
    summary = suite.write_outputs(FLAGS.export_dir, name, rows, threads, batch_sizes, settings,
                                  FLAGS.max_cv, load_before, rows[0]["examples"],
                                  num_classes=dataset.num_classes, workdir=FLAGS.workdir)
    print(summary)


def cli_main():
    cli_run.entry_point("tftool-benchmark", NAMES, main, DEFAULTS)
