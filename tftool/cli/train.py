"""Trains the float model: `tftool-train` / `python -m tftool train`.

Example: python -m tftool train --dataset=digits --workdir=workdir
Writes WORKDIR/float/ (stage_runner.py): a re-run resumes a killed run or skips a complete one.
The training settings come from a preset (--preset, tftool/train/presets.py: photo for RGB
photos, digits otherwise); each flag given replaces that field. Flags shown without a default
take the preset's.
"""
from tftool import jobs, stage_runner
from tftool.cli import flags as cli_flags, run as cli_run, shared
from tftool.train import presets

from absl import flags, logging

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + cli_flags.TRAINING_FLAGS + (
    "model", "width", "num_stages", "alpha", "minimalistic", "weights", "freeze_backbone_epochs",
    "mixed_precision", "preset", "whitening")
# Every setting a preset holds is unset (None) until the preset is applied (shared.
# apply_preset): the preset is the one home of these defaults.
DEFAULTS = {name: None for name in presets.FIELDS}


def main(argv):
    del argv
    from tftool.train import precision

    shared.check_training_flags()  # before any data is read or folder made
    if FLAGS.model:  # a misspelt name or a user builder that cannot be imported: say it now
        from tftool import models
        models.builder(FLAGS.model)
    strategy = shared.build_strategy()
    chosen = {}

    def resolve(dataset, size):
        from tftool import data

        # The input size, and a test split drawn from the folder, out loud before anything else
        chosen["input"] = data.image_size_source(dataset, size, given=bool(FLAGS.image_size))
        if chosen["input"]["source"] != "native" or chosen["input"]["resized"] != 0:
            print(f"tftool-train: input {chosen['input']['text']}", flush=True)  # decided
        drawn = data.test_split_source(dataset)
        if drawn:
            print(f"tftool-train: test split: {drawn}", flush=True)
        chosen["preset"], chosen["reason"] = shared.apply_preset(dataset, size)

    context, settings = shared.stage_context("float", strategy, resolve=resolve)
    settings["image_size"] = shared.recorded_image_size(settings, context.image_size)
    with precision.policy_for_training(FLAGS.mixed_precision, FLAGS.model) as policy:
        setting = {None: "auto", True: "on", False: "off"}[FLAGS.mixed_precision]
        logging.info("dtype policy %s (--mixed_precision: %s)", policy, setting)
        config = shared.train_config(context.dataset)
        training = {name: getattr(config, name) for name in presets.FIELDS
                    if hasattr(config, name)}
        stage_runner.run(jobs.float_job(
            config, context.dataset, context.input_shape,
            {**settings, "preset": chosen["preset"].name}, model=FLAGS.model,
            width=FLAGS.width, alpha=FLAGS.alpha,
            weights=FLAGS.weights, num_stages=FLAGS.num_stages, minimalistic=FLAGS.minimalistic,
            freeze_backbone_epochs=FLAGS.freeze_backbone_epochs, whitening=FLAGS.whitening,
            metrics_extra={"mixed_precision": setting, "dtype_policy": policy,
                           "input_size": chosen["input"],
                           "preset": chosen["preset"].name,
                           "preset_reason": chosen["reason"],
                           "preset_source": chosen["preset"].source,
                           "training": training}), context)


def cli_main():
    cli_run.entry_point("tftool-train", NAMES, main, DEFAULTS)
