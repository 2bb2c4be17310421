"""Pre-flight check: `tftool-check` / `python -m tftool.check` (library: optimize/check.py).

Examples:
  python -m tftool.check --model=mobilenet_v2 --image_size=96 --channels=3
  python -m tftool.check --model=path/to/model.h5
  python -m tftool.check --workdir=workdir --stage=float
Exit status 1 when a layer would stop `tftool-quantize` / `tftool-prune`.
"""
import os
import sys

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError
from tftool.optimize.check import PURPOSES, describe, unsupported_layers

# ---- entry point -----------------------------------------------------------------------------
def _define_flags():
    from absl import flags

    from tftool import io as workdir, models

    flags.DEFINE_string("model", None, f"A model name ({', '.join(models.MODELS)}) built with "
                        f"--image_size/--channels/--num_classes/--width/--alpha, or a saved "
                        f"model file (.h5/.keras). Default: WORKDIR/<--stage>/model.h5.")
    flags.DEFINE_enum("stage", "float", workdir.STAGES, "With no --model: the stage whose "
                      "saved model is checked, WORKDIR/<stage>/model.h5.")
    flags.DEFINE_list("purpose", list(PURPOSES), "What to check for: quantize, prune.")
    flags.DEFINE_enum("scheme", "default", ["default", "prune_preserve"],
                      "QAT scheme for --purpose=quantize.")
    flags.DEFINE_integer("num_classes", 10, "Logits of a model built by name.")
    flags.DEFINE_integer("width", 32, "small_cnn: channels of the first stage.")
    flags.DEFINE_float("alpha", 1.0, "mobilenet_v2: width multiplier.")
    flags.register_validator("purpose", lambda v: bool(v) and set(v) <= set(PURPOSES),
                             message="--purpose: quantize, prune or quantize,prune")


def load(model_flag, stage):
    """The model to check: built by name, loaded from a file, or WORKDIR/<stage>/model.h5."""
    from absl import flags

    from tftool import io as workdir, models

    FLAGS = flags.FLAGS
    if model_flag is None:
        path = workdir.model_path(FLAGS.workdir, stage)
        return workdir.load_model(path), path
    if model_flag in models.MODELS:
        size = FLAGS.image_size or 32  # mobilenet_v2 needs ≥ 32 px; layers do not depend on it
        shape = (size, size, FLAGS.channels or 3)
        return models.build(model_flag, shape, FLAGS.num_classes, width=FLAGS.width,
                            alpha=FLAGS.alpha), model_flag
    if os.path.isfile(model_flag):
        return workdir.load_model(model_flag), model_flag
    raise UserError(f"--model={model_flag}: neither a model name ({', '.join(models.MODELS)}) "
                    f"nor a model file")


def main(argv):
    del argv
    from absl import flags

    FLAGS = flags.FLAGS
    model, what = load(FLAGS.model, FLAGS.stage)
    blocked = False
    print(f"{what}: {len(model.layers)} layers")
    for purpose in FLAGS.purpose:
        findings = unsupported_layers(model, purpose, FLAGS.scheme)
        print("\n".join(describe(findings, purpose)))
        blocked |= any(f["blocking"] for f in findings)
    if blocked:
        sys.exit(1)


def cli_main():
    from tftool.cli import common as cli

    _define_flags()
    cli.run(main)


if __name__ == "__main__":
    cli_main()
