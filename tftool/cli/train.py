"""Trains the float model: `tftool-train` / `python -m tftool.train`.

Example: python -m tftool.train --dataset=digits --workdir=workdir
Writes WORKDIR/float/{model.h5, metrics.json, flags.txt, config.json, logs/, ckpt/, backup/}.
A re-run resumes an interrupted run (BackupAndRestore) or skips a complete one.
"""
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool.cli import common as cli
from tftool import data as data_lib, models,   io as workdir
from tftool.train import fit as trainer, precision, strategy as strategy_lib

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "small_cnn", f"Model: {', '.join(models.MODELS)}.")
flags.DEFINE_integer("width", 32, "small_cnn: channels of the first stage.")
flags.DEFINE_float("alpha", 1.0, "mobilenet_v2: width multiplier.")
flags.DEFINE_enum("weights", None, ["imagenet"], "mobilenet_v2: pretrained weights (download).")
flags.DEFINE_boolean("mixed_precision", False,
                     "Train under the mixed_float16 policy (GPU only; refused on CPU). The logits "
                     "layer and every saved/exported model stay float32.")
cli.define_training_flags(epochs=30, learning_rate=3e-3, lr_schedule="cosine_warmup",
                          warmup_epochs=1.0)


def main(argv):
    del argv
    strategy = cli.build_strategy()
    chief = cli.is_chief(strategy)
    precision.set_policy(FLAGS.mixed_precision)
    settings = cli.data_settings("float")
    out = workdir.stage_dir(FLAGS.workdir, "float")
    config = {**settings, "model": FLAGS.model, "width": FLAGS.width, "alpha": FLAGS.alpha}
    with cli.stage_lock(out, chief, config, free=("skip_corrupt",)):
        train_stage(strategy, settings, out, chief)


def train_stage(strategy, settings, out, chief):
    """Skips a complete stage, else trains (resuming a killed run) and writes WORKDIR/float."""
    if cli.stage_complete("float", chief=chief):
        return
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    input_shape = image_size + (dataset.image_shape[-1],)

    def model_fn():
        return models.build(FLAGS.model, input_shape, dataset.num_classes, width=FLAGS.width,
                            alpha=FLAGS.alpha, weights=FLAGS.weights)

    model, history = trainer.train(strategy, model_fn, dataset, image_size,
                                   cli.train_config(dataset), out)
    metrics = {
        **trainer.evaluate(model, dataset, image_size),
        "stage": "float", "model": FLAGS.model, "dataset": dataset.name,
        "input_shape": list(input_shape), "class_names": dataset.class_names,
        "num_replicas": strategy.num_replicas_in_sync,
        "global_batch_size": FLAGS.per_replica_batch_size * strategy.num_replicas_in_sync,
        "epochs": FLAGS.epochs, "epochs_this_run": len(history.get("loss", [])),
        "params": int(model.count_params()), "mixed_precision": FLAGS.mixed_precision,
        "weights_sha256": trainer.weights_digest(model), "history": history,
    }
    # Every worker prints this line: equal digests show the replicas ended in sync.
    print(f"{strategy_lib.describe(strategy)}: trained {metrics['epochs_this_run']} epoch(s) "
          f"this run, weights sha256 {metrics['weights_sha256']}", flush=True)
    cli.write_stage("float", model, metrics, strategy)


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
