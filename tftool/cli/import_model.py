"""Imports a trained Keras model as the float model: `tftool-import` (library: importer.py).

Example: tftool-import --keras_model=my_cnn.keras --dataset=folder:photos --workdir=workdir
Writes WORKDIR/float/ as tftool-train would, so every later stage (make quantize prune distill
export benchmark micro) starts from your model. Accepted: a Keras 3 or tf_keras .keras file, a
tf_keras .h5 file or SavedModel folder; functional or Sequential, nested models flattened; a
subclassed model is kept whole as a SavedModel (every post-training variant, the gate, the
benchmark and micro; no QAT, pruning or clustering, which make skips with one line each;
--custom_objects names the code that registers its class). The model is rebuilt in tf_keras
with its weights and refused unless its class probabilities match the original's within
--max_output_difference on 100 test images. Its input range (0-1, -1-1,
0-255) is read from the data (--input_range to give it); a softmax at its output is removed
(export adds it back). Its classes must be the data set's, in its order (a folder: the sorted
class folder names).
"""
from tftool import UserError
from tftool.cli import flags as cli_flags, run as cli_run, shared

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + ("keras_model", "custom_objects", "input_range",
                                "max_output_difference", "overwrite", "allow_chance_accuracy")


def main(argv):
    del argv
    import os

    import tensorflow as tf

    from tftool import data, fileio, importer, stage_runner

    if not FLAGS.keras_model:
        raise UserError("--keras_model is required: the .keras or .h5 file (or SavedModel "
                        "folder) of your trained model")
    path = FLAGS.keras_model
    source, kind = importer.load_source(path, FLAGS.custom_objects)
    settings = shared.data_settings("float")
    dataset = shared.load_data(settings)
    fixed = importer.check_shapes(source, dataset, path)
    if fixed and FLAGS.image_size and (FLAGS.image_size,) * 2 != fixed:
        raise UserError(f"--image_size={FLAGS.image_size} differs from the model's input "
                        f"{fixed[0]}x{fixed[1]}; leave --image_size out")
    size = fixed or data.resolve_image_size(dataset, settings["image_size"])
    settings.update(image_size=data.size_setting(size),
                    model="import:" + os.path.splitext(os.path.basename(
                        os.path.normpath(path)))[0],
                    keras_model=os.path.abspath(path),
                    keras_model_sha256=fileio.sha256(path), input_range=FLAGS.input_range)
    context = stage_runner.Context(
        workdir=FLAGS.workdir, strategy=tf.distribute.get_strategy(), dataset=dataset,
        image_size=size, overwrite=FLAGS.overwrite, flags_text=cli_flags.flags_text(),
        allow_chance_accuracy=FLAGS.allow_chance_accuracy)
    importer.import_float(context, path, source, kind, FLAGS.input_range,
                          FLAGS.max_output_difference, settings)


def cli_main():
    cli_run.entry_point("tftool-import", NAMES, main)
