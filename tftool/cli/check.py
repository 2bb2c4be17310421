"""Pre-flight check: `tftool-check` / `python -m tftool check` (library: optimize/check.py).

Examples:
  python -m tftool check --model=mobilenet_v2 --image_size=96 --channels=3
  python -m tftool check --model=path/to/model.h5
  python -m tftool check --workdir=workdir --stage=float
  python -m tftool check --keras_model=my_model.keras   (before tftool-import: as it rebuilds it)
Lists every layer tfmot cannot quantize or prune and what to do about it; exit status 1 when a
layer would stop `tftool-quantize` / `tftool-prune`.
"""
import os
import sys

from tftool import UserError, stages
from tftool.cli import run as cli_run

from absl import flags

FLAGS = flags.FLAGS
NAMES = ("workdir", "image_size", "channels", "model", "stage", "purpose", "scheme",
         "num_classes", "width", "num_stages", "alpha", "minimalistic", "keras_model",
         "custom_objects")


def load(model_flag, stage):
    """(model, what) to check: built by name, loaded from a file, or WORKDIR/<stage>."""
    from tftool import fileio, models

    if model_flag in models.MODELS or (model_flag and models.is_user_builder(model_flag)):
        size = FLAGS.image_size or 32  # mobilenet_v2 needs ≥ 32 px; layers do not depend on it
        return models.build(model_flag, (size, size, FLAGS.channels or 3), FLAGS.num_classes,
                            width=FLAGS.width, alpha=FLAGS.alpha, stages=FLAGS.num_stages,
                            minimalistic=FLAGS.minimalistic), model_flag
    path = model_flag or stages.model_path(FLAGS.workdir, stage)
    if not os.path.isfile(path):
        raise UserError(f"--model={model_flag}: neither a model name ({', '.join(models.MODELS)})"
                        f" nor a model file" if model_flag else
                        stages.missing_model_message(FLAGS.workdir, stage))
    return fileio.load_model(path), path


def imported(path):
    """(model, what) for --keras_model: the flat tf_keras model tftool-import would write
    (importer.load_source + rebuild.flat_model). A model it cannot rebuild (subclassed: kept
    whole; a layer tf_keras lacks: refused) is printed with what that leaves, exit status 1."""
    from tftool import importer, rebuild

    source, kind = importer.load_source(path, FLAGS.custom_objects)
    size = FLAGS.image_size or 32
    try:
        model, dropped = rebuild.flat_model(source, (size, size, FLAGS.channels or 3))
    except rebuild.Subclassed as e:
        print(f"{path} ({kind}): {e}. tftool-import keeps it whole as a SavedModel: every "
              f"post-training variant, the gate, the benchmark, micro and distillation work; "
              f"QAT, pruning and clustering cannot see its layers (make skips them)")
        sys.exit(1)
    except rebuild.Unconvertible as e:
        print(f"{path} ({kind}): tftool-import cannot rebuild it: {e}. Without it no tftool "
              f"stage can start from this model")
        sys.exit(1)
    left_out = f", {len(dropped)} augmentation layers left out" if dropped else ""
    return model, f"{path} ({kind}, rebuilt flat as tftool-import does{left_out})"


def main(argv):
    del argv
    from tftool.optimize.check import describe, unsupported_layers

    if FLAGS.keras_model:
        model, what = imported(FLAGS.keras_model)
    else:  # --model: a builder or a file; without it (its default is None), WORKDIR/<stage>
        model, what = load(FLAGS.model, FLAGS.stage)
    print(f"{what}: {len(model.layers)} layers")
    blocked = found = False
    for purpose in FLAGS.purpose:
        findings = unsupported_layers(model, purpose, FLAGS.scheme)
        print("\n".join(describe(findings, purpose)))
        blocked |= any(f["blocking"] for f in findings)
        found |= bool(findings)
    if found:
        print("(Building your own model in Python? tftool.optimize.check.unsupported_layers("
              "model) and describe(..., audience=\"library\") give each layer's code-level "
              "fix.)")
    if blocked:
        sys.exit(1)


def cli_main():
    cli_run.entry_point("tftool-check", NAMES, main)
