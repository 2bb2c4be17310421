"""Converts every stage's model to .tflite: `tftool-export` / `python -m tftool.export`.

Example: python -m tftool.export --workdir=workdir --export_dir=exported
Writes EXPORT_DIR/<name>_<variant>.tflite, a JSON model card beside each, and labels.txt (one
class name a line, in output-index order), each atomically. A variant more than
--max_accuracy_drop below its reference model is not written (export/gate.py); the others
are, then the command exits 2 naming the refused ones, so `make export` fails.
"""
import sys

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, data, stages
from tftool.cli import common
from tftool.export import variants as variants_lib

from absl import flags

FLAGS = flags.FLAGS
NAMES = common.DATA_FLAGS + ("export_dir", "name", "variants", "calibration_steps",
                             "calibration_seed", "calibration_data", "max_accuracy_drop",
                             "allow_chance_accuracy")


def main(argv):
    del argv
    settings = common.data_settings("export")
    if not stages.has_model(FLAGS.workdir, "float"):  # the accuracy gate compares with it
        raise UserError(stages.missing_model_message(FLAGS.workdir, "float", "tftool-export"))
    variants = variants_lib.resolve(FLAGS.workdir, FLAGS.variants)
    dataset = common.load_data(settings)
    refuse_near_chance(FLAGS.workdir, dataset, FLAGS.allow_chance_accuracy)
    size = common.image_size(dataset, settings)
    if FLAGS.calibration_data == "blank":
        representative = variants_lib.blank_representative_dataset(
            size + (dataset.image_shape[-1],), FLAGS.calibration_steps)
    else:
        representative = data.representative_dataset(dataset, size, FLAGS.calibration_steps,
                                                     FLAGS.calibration_seed)
    _, refused = variants_lib.export(
        FLAGS.workdir, FLAGS.export_dir, FLAGS.name or common.default_name(FLAGS.workdir),
        dataset, size, variants, representative, FLAGS.max_accuracy_drop)
    for _, reason in refused:
        print(f"tftool-export: {reason}", file=sys.stderr, flush=True)
    if refused:
        raise UserError(f"the accuracy gate refused {', '.join(v for v, _ in refused)} (more than {FLAGS.max_accuracy_drop * 100:g} point(s) below its "
                        f"reference model); the other variants were written. Fix the variant, "
                        f"or pass --variants without it or a larger --max_accuracy_drop")


def refuse_near_chance(workdir, dataset, allow):
    """Raises UserError when WORKDIR/float's test accuracy is near chance (chance.py): the
    accuracy gate compares variants with the float model, so it would pass every variant of
    a float model that guesses. `allow` (--allow_chance_accuracy) only warns."""
    from tftool import chance, stage_runner

    metrics = stage_runner.read_metrics(workdir, "float") or {}
    if "test_accuracy" not in metrics:
        return
    train = (metrics.get("history", {}).get("accuracy") or [None])[-1]
    verdict = chance.near_chance(metrics["test_accuracy"], dataset.num_classes,
                                 dataset.num_test, train)
    if verdict is None:
        return
    where = f"{workdir}/float"
    if allow:
        print(f"tftool-export: warning: --allow_chance_accuracy: exporting anyway; "
              f"{verdict.message(where)}", file=sys.stderr, flush=True)
        return
    raise UserError(f"refusing to export: {verdict.message(where)}. Fix and retrain the float "
                    f"model, or pass --allow_chance_accuracy to export it anyway")


def cli_main():
    common.entry_point("tftool-export", NAMES, main)
