"""Measures the float Keras model and every exported .tflite: `tftool-benchmark`.

Example: python -m tftool benchmark --workdir=workdir --export_dir=exported
Accuracy, agreement, size and latency per --threads × --batch_sizes × --xnnpack setting;
writes EXPORT_DIR/benchmark.{json,md}, report.{md,png} and the model cards' figures
(benchmark/suite.py), and prints report.md.
"""
from tftool.benchmark import suite, timing
from tftool.cli import common
from tftool.export import owner

from absl import flags

FLAGS = flags.FLAGS
NAMES = common.DATA_FLAGS + ("export_dir", "name", "threads", "batch_sizes", "xnnpack",
                             "min_runs", "min_seconds", "warmup_runs", "warmup_seconds",
                             "max_cv", "memory")


def main(argv):
    del argv
    threads = sorted({int(v) for v in FLAGS.threads or (1, suite.CORES)})
    batch_sizes = sorted({int(v) for v in FLAGS.batch_sizes})
    xnnpack = [v == "on" for v in dict.fromkeys(FLAGS.xnnpack)]
    settings = {k: FLAGS[k].value for k in ("min_runs", "min_seconds", "warmup_runs",
                                            "warmup_seconds")}
    timing.set_tf_threads(max(threads))  # before TensorFlow's first op (accuracy pass only)
    data_settings = common.data_settings("benchmark")
    name = FLAGS.name or common.default_name(FLAGS.workdir)
    owner.check(FLAGS.export_dir, FLAGS.workdir, name, "tftool-benchmark")
    suite.exported_files(FLAGS.export_dir, name)  # no exports: one line before loading data
    dataset = common.load_data(data_settings)
    size = common.image_size(dataset, data_settings)
    load_before = suite.machine()["load_average"]
    rows = suite.measure_all(FLAGS.workdir, FLAGS.export_dir, name, dataset, size, threads,
                             batch_sizes, xnnpack, settings, FLAGS.max_cv, FLAGS.memory)
    summary = suite.write_outputs(FLAGS.export_dir, name, rows, threads, batch_sizes, settings,
                                  FLAGS.max_cv, load_before, rows[0]["examples"],
                                  num_classes=dataset.num_classes, workdir=FLAGS.workdir)
    print(summary)


def cli_main():
    common.entry_point("tftool-benchmark", NAMES, main)
