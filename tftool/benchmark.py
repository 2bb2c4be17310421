"""Measures the float Keras model and every exported .tflite: `tftool-benchmark`.

Example: python -m tftool.benchmark --workdir=workdir --export_dir=exported
For each model: top-1 accuracy on the whole test split, agreement with the float model's
predictions, file size raw and gzipped, and batch-1 latency (warm-up, then --runs timed
calls; p50 and p90) on --num_threads CPU threads. Writes EXPORT_DIR/benchmark.json (a list
of rows, bench.ROW_KEYS first) and EXPORT_DIR/benchmark.md, and prints the table.
"""
import glob
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, bench, cli, data as data_lib, report, workdir

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", "exported", "Directory of the exported .tflite files.")
flags.DEFINE_string("name", None, "Benchmark <name>_*.tflite (default: <dataset>_<model>).")
flags.DEFINE_integer("num_threads", os.cpu_count(), "CPU threads for TFLite and TensorFlow.")
flags.DEFINE_integer("warmup_runs", 50, "Untimed runs before timing.")
flags.DEFINE_integer("runs", 500, "Timed runs per model.")
flags.register_validator("num_threads", lambda v: v >= 1, message="--num_threads must be ≥ 1")
flags.register_validator("runs", lambda v: v >= 1, message="--runs must be ≥ 1")


def main(argv):
    del argv
    bench.set_tf_threads(FLAGS.num_threads)  # before TensorFlow's first op
    settings = cli.data_settings("benchmark")
    name = FLAGS.name or cli.default_name(FLAGS.workdir)
    paths = sorted(glob.glob(os.path.join(FLAGS.export_dir, f"{glob.escape(name)}_*.tflite")))
    if not paths:
        raise UserError(f"no {name}_*.tflite in {FLAGS.export_dir}: run tftool-export first")
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    images, labels = data_lib.test_arrays(dataset, image_size)
    float_path = workdir.model_path(FLAGS.workdir, "float")
    model = workdir.load_model(float_path)
    row, reference = bench.keras_row(model, float_path, name, images, labels, FLAGS.num_threads,
                                     FLAGS.warmup_runs, FLAGS.runs)
    rows = [row]
    for path in paths:
        variant = os.path.basename(path)[len(name) + 1:-len(".tflite")]
        rows.append(bench.tflite_row(path, name, variant, images, labels, reference,
                                     FLAGS.num_threads, FLAGS.warmup_runs, FLAGS.runs))
    table = report.markdown_table(rows)
    workdir.write_json(os.path.join(FLAGS.export_dir, "benchmark.json"), rows)
    workdir.write_text(os.path.join(FLAGS.export_dir, "benchmark.md"),
                       f"# {name}: {len(labels)} test images, batch 1, "
                       f"{FLAGS.num_threads} thread(s)\n\n{table}")
    print(table)


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
