"""Magnitude pruning of the float model: `tftool-prune` / `python -m tftool.prune`.

Example: python -m tftool.prune --workdir=workdir --target_sparsity=0.8
Loads WORKDIR/float/model.h5, wraps the selected layers in tfmot's prune_low_magnitude inside
the strategy scope (optimize/prune.py), fine-tunes while sparsity ramps from --initial_sparsity
to --target_sparsity (Zhu & Gupta 2017), strips the wrappers and writes WORKDIR/pruned/ with the
per-layer sparsity in metrics.json. A schedule that cannot reach its target within the run's
steps stops before training.
"""
import os

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool.cli import common as cli
from tftool.optimize import check
from tftool import UserError, data as data_lib, io as workdir
from tftool.optimize import prune as prune_lib
from tftool.train import fit as trainer

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_float("target_sparsity", 0.8, "Fraction of zero weights in each pruned kernel at "
                   "the end of the ramp, in (0, 1).")
flags.DEFINE_float("initial_sparsity", 0.0, "Sparsity at the start of the ramp, in "
                   "[0, target_sparsity].")
flags.DEFINE_integer("pruning_frequency", None, "Steps (batches) between mask updates "
                     "(default: the ramp split into 16 updates).")
flags.DEFINE_integer("pruning_begin_step", 0, "Step at which the sparsity ramp starts.")
flags.DEFINE_integer("pruning_end_step", None, "Step at which --target_sparsity is reached "
                     "(default: the last mask update within the first 3/4 of the run; the rest "
                     "fine-tunes at the target).")
flags.DEFINE_list("skip_layers", list(prune_lib.DEFAULT_SKIP),
                  f"Layers left dense: kinds ({', '.join(prune_lib.SKIP_KINDS)}) and/or layer "
                  f"names; empty (--skip_layers=) prunes every Conv2D/Dense. Batch norm is never "
                  f"pruned (no kernel).")
cli.define_training_flags(epochs=10, learning_rate=1e-3, lr_schedule="cosine")
flags.register_validator("target_sparsity", lambda v: 0.0 < v < 1.0,
                         message="--target_sparsity must be in (0, 1), e.g. 0.8")
flags.register_validator("initial_sparsity", lambda v: 0.0 <= v < 1.0,
                         message="--initial_sparsity must be in [0, 1)")
flags.register_validator("pruning_frequency", lambda v: v is None or v >= 1,
                         message="--pruning_frequency must be ≥ 1 step")


def main(argv):
    del argv
    strategy = cli.build_strategy()
    settings = cli.data_settings("pruned")
    source_path = workdir.model_path(FLAGS.workdir, "float")
    if not os.path.isfile(source_path):
        raise UserError(f"no float model at {source_path}: run tftool-train "
                        f"--workdir={FLAGS.workdir} first")
    dataset = cli.load_data(settings)
    config = cli.train_config(dataset)
    global_batch = config.per_replica_batch_size * strategy.num_replicas_in_sync
    total_steps = (dataset.num_train // global_batch) * config.epochs
    # Validate the schedule before anything is written or trained.
    schedule = prune_lib.schedule_steps(
        total_steps, FLAGS.initial_sparsity, FLAGS.target_sparsity, FLAGS.pruning_begin_step,
        FLAGS.pruning_end_step, FLAGS.pruning_frequency)
    out = workdir.stage_dir(FLAGS.workdir, "pruned")
    chief = cli.is_chief(strategy)
    with cli.stage_lock(out, chief, {"from": "float", "target_sparsity": FLAGS.target_sparsity,
                                     "initial_sparsity": FLAGS.initial_sparsity,
                                     "skip_layers": list(FLAGS.skip_layers)}):
        train_stage(strategy, dataset, settings, config, schedule, total_steps, source_path,
                    out, chief)


def train_stage(strategy, dataset, settings, config, schedule, total_steps, source_path, out,
                chief):
    """Skips a complete stage, else prunes while fine-tuning (resuming a killed run), strips
    the wrappers and writes WORKDIR/pruned."""
    if cli.stage_complete("pruned", inputs=[source_path], chief=chief):
        return
    # Pre-flight: name every layer tfmot cannot prune before any training time is spent.
    check.require_supported(workdir.load_model(source_path), "prune", source_path)
    image_size = data_lib.resolve_image_size(dataset, settings["image_size"])
    selected = []

    def model_fn():  # runs inside strategy.scope(): the wrappers create variables
        model = workdir.load_model(source_path)
        selected.extend(prune_lib.select_layers(model, FLAGS.skip_layers))
        return prune_lib.apply(model, schedule, FLAGS.skip_layers)

    model, history = trainer.train(
        strategy, model_fn, dataset, image_size, config, out,
        extra_callbacks=prune_lib.callbacks(os.path.join(out, "logs", "pruning")))
    with strategy.scope():
        stripped = prune_lib.strip(model)
    per_layer = prune_lib.layer_sparsity(stripped)
    metrics = {
        **trainer.evaluate(stripped, dataset, image_size), "stage": "pruned", "from": "float",
        "sparsity": prune_lib.overall_sparsity(stripped, selected),
        "layer_sparsity": per_layer, "pruned_layers": selected,
        "schedule": {"initial_sparsity": schedule.initial_sparsity,
                     "target_sparsity": schedule.target_sparsity,
                     "begin_step": schedule.begin_step, "end_step": schedule.end_step,
                     "frequency": schedule.frequency, "power": schedule.power,
                     "total_steps": total_steps},
        "num_replicas": strategy.num_replicas_in_sync, "epochs": FLAGS.epochs,
        "params": int(stripped.count_params()), "history": history,
    }
    cli.write_stage("pruned", stripped, metrics, strategy)
    print(f"{out}: sparsity {metrics['sparsity']:.3f} over {len(selected)} pruned layers")


def cli_main():
    cli.run(main)


if __name__ == "__main__":
    cli_main()
