"""Quantization-aware training: `tftool-quantize` / `python -m tftool.quantize`.

Example: python -m tftool.quantize --workdir=workdir
Loads WORKDIR/float/model.h5, wraps it with tfmot's quantize_model inside the strategy scope,
fine-tunes it at a low learning rate and writes WORKDIR/qat/. With --from=pruned it starts from
WORKDIR/pruned and (by default) keeps the zeros: --preserve_sparsity, written to WORKDIR/pqat/.
"""
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool.cli import common as cli
from tftool.optimize import check
from tftool import UserError, data as data_lib, io as workdir
from tftool.optimize import qat
from tftool.train import fit as trainer

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("from", "float", ["float", "pruned"], "Stage whose model is fine-tuned.")
flags.DEFINE_boolean("preserve_sparsity", None,
                     "Prune-preserving QAT (keeps zero weights zero); default: on for "
                     "--from=pruned. Writes WORKDIR/pqat instead of WORKDIR/qat.")
cli.define_training_flags(epochs=3, learning_rate=1e-4, lr_schedule="cosine")


def output_stage(source, preserve_sparsity):
    """qat for a float source; pqat for a pruned source with sparsity preserved."""
    if source == "pruned" and preserve_sparsity:
        return "pqat"
    if source == "pruned":
        raise UserError("--from=pruned --nopreserve_sparsity would lose the zeros and write over "
                        "WORKDIR/qat (the float model's QAT); drop --nopreserve_sparsity")
    if preserve_sparsity:
        raise UserError("--preserve_sparsity needs --from=pruned (a float model has no zeros "
                        "to preserve)")
    return "qat"


def main(argv):
    del argv
    source = getattr(FLAGS, "from")
    preserve = FLAGS.preserve_sparsity
    if preserve is None:
        preserve = source == "pruned"
    stage = output_stage(source, preserve)
    strategy = cli.build_strategy()
    chief = cli.is_chief(strategy)
    settings = cli.data_settings(stage)
    source_path = workdir.model_path(FLAGS.workdir, source)
    if not os.path.isfile(source_path):
        raise UserError(f"no {source} model at {source_path}: run "
                        f"{'tftool-train' if source == 'float' else 'tftool-prune'} first")
    out = workdir.stage_dir(FLAGS.workdir, stage)
    with cli.stage_lock(out, chief, {"from": source, "preserve_sparsity": preserve}):
        train_stage(strategy, stage, source, source_path, preserve, settings, out, chief)


def train_stage(strategy, stage, source, source_path, preserve, settings, out, chief):
    """Skips a complete stage, else fine-tunes (resuming a killed run) and writes it."""
    if cli.stage_complete(stage, inputs=[source_path], chief=chief):
        return
    scheme = "prune_preserve" if preserve else "default"
    # Pre-flight: name every layer tfmot cannot quantize before any training time is spent.
    check.require_supported(workdir.load_model(source_path), "quantize", source_path, scheme)
    dataset = cli.load_data(settings)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])

    def model_fn():
        return qat.apply(workdir.load_model(source_path), scheme=scheme)

    model, history = trainer.train(strategy, model_fn, dataset, image_size,
                                   cli.train_config(dataset), out)
    metrics = {**trainer.evaluate(model, dataset, image_size), "stage": stage, "from": source,
               "scheme": scheme, "epochs": FLAGS.epochs, "history": history}
    cli.write_stage(stage, model, metrics, strategy)


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
