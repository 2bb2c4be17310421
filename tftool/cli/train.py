"""Trains the float model: `tftool-train` / `python -m tftool.train`.

Example: python -m tftool.train --dataset=digits --workdir=workdir
Writes WORKDIR/float/ (stage_runner.py): a re-run resumes a killed run or skips a complete one.
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import jobs, stage_runner
from tftool.cli import common

from absl import flags, logging

FLAGS = flags.FLAGS
NAMES = common.DATA_FLAGS + common.TRAINING_FLAGS + (
    "model", "width", "stages", "alpha", "minimalistic", "weights", "freeze_backbone_epochs",
    "mixed_precision")
DEFAULTS = jobs.DEFAULTS["float"]


def main(argv):
    del argv
    from tftool.train import precision

    common.check_training_flags()  # before any data is read or folder made
    strategy = common.build_strategy()
    with precision.policy_for_training(FLAGS.mixed_precision, FLAGS.model) as policy:
        setting = {None: "auto", True: "on", False: "off"}[FLAGS.mixed_precision]
        logging.info("dtype policy %s (--mixed_precision: %s)", policy, setting)
        context, settings = common.stage_context("float", strategy)
        stage_runner.run(jobs.float_job(
            common.train_config(context.dataset), context.dataset, context.input_shape,
            settings, model=FLAGS.model, width=FLAGS.width, alpha=FLAGS.alpha,
            weights=FLAGS.weights, stages=FLAGS.stages, minimalistic=FLAGS.minimalistic,
            freeze_backbone_epochs=FLAGS.freeze_backbone_epochs,
            metrics_extra={"mixed_precision": setting, "dtype_policy": policy}), context)


def cli_main():
    common.entry_point("tftool-train", NAMES, main, DEFAULTS)
