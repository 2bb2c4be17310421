"""Magnitude pruning of the float model: `tftool-prune` / `python -m tftool prune`.

Example: python -m tftool prune --workdir=workdir --target_sparsity=0.8
Wraps the selected layers of WORKDIR/float's model in tfmot's prune_low_magnitude, fine-tunes
while sparsity ramps from --initial_sparsity to --target_sparsity (Zhu & Gupta 2017), strips
the wrappers -> WORKDIR/pruned, per-layer sparsity in metrics.json. A schedule that cannot
reach its target within the run stops before anything is written. --sparsity_m_by_n=2,4 prunes
to the structured 2:4 pattern instead -> WORKDIR/pruned_2by4.
"""
import os

from tftool import UserError, choose, fileio, jobs, stage_runner, stages
from tftool.cli import flags as cli_flags, run as cli_run, shared
from tftool.optimize import check

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + cli_flags.TRAINING_FLAGS + (
    "target_sparsity", "initial_sparsity", "pruning_frequency", "pruning_begin_step",
    "pruning_end_step", "skip_layers", "sparsity_m_by_n", "max_accuracy_drop")
DEFAULTS = jobs.DEFAULTS["prune"]


def main(argv):
    del argv
    from tftool.optimize import prune
    from tftool.train import fit

    m_by_n = prune.parse_m_by_n(FLAGS.sparsity_m_by_n)
    stage = "pruned_2by4" if m_by_n else "pruned"
    target_sparsity = cli_flags.number_or_auto("target_sparsity")
    if m_by_n and target_sparsity == "auto":
        raise UserError("--target_sparsity=auto chooses an unstructured sparsity; "
                        "--sparsity_m_by_n fixes it at m/n: pass one of them")
    path = stages.model_path(FLAGS.workdir, "float")
    if not os.path.isfile(path):
        raise UserError(stages.missing_model_message(FLAGS.workdir, "float", "tftool-prune"))
    context, _ = shared.stage_context(stage)
    config = shared.train_config(context.dataset)
    total_steps = config.epochs * fit.steps_per_epoch_of(
        context.dataset.num_train, config, context.strategy.num_replicas_in_sync)

    def job(sparsity):
        """The pruning Job at `sparsity` (a fraction; ignored with m:n pruning)."""
        return jobs.prune_job(FLAGS.workdir, config, total_steps, sparsity, FLAGS.skip_layers,
                              FLAGS.initial_sparsity, FLAGS.pruning_begin_step,
                              FLAGS.pruning_end_step, FLAGS.pruning_frequency, m_by_n)[0]

    if target_sparsity != "auto":
        shared.run_or_skip("tftool-prune", lambda: stage_runner.run(job(target_sparsity),
                                                                   context), stage)
        return
    # --target_sparsity=auto: the ladder, mildest first, on the validation split (choose.py)
    settings = {**job(prune.SPARSITY_LADDER[0]).settings, "target_sparsity": "auto",
                "max_accuracy_drop": FLAGS.max_accuracy_drop}
    if choose.skip_if_complete(stage, settings, context, inputs=[path]):
        return
    source = fileio.load_model(path)
    if not shared.run_or_skip("tftool-prune", lambda: check.require_supported(source, "prune",
                                                                               path), stage):
        return
    _, reference = choose.validation_correctness(source, context)

    def run(sparsity):
        scratch = choose.scratch_context(context, stage, f"sparsity_{sparsity:g}", ["float"])
        stage_runner.run(job(sparsity), scratch)
        return fileio.load_model(stages.model_path(scratch.workdir, stage))

    chosen, records = choose.ladder(prune.SPARSITY_LADDER, run, reference, context,
                                    FLAGS.max_accuracy_drop)
    chosen = choose.require(chosen, "--target_sparsity", records,
                            "pass a --target_sparsity below the ladder's first rung, or a "
                            "larger --max_accuracy_drop")
    print(f"--target_sparsity=auto: chose {chosen:g}, the highest sparsity whose validation "
          f"accuracy stays within --max_accuracy_drop={FLAGS.max_accuracy_drop:g} of the float "
          f"model's ({len(records)} rung(s) run)", flush=True)
    source_dir = stages.stage_dir(os.path.join(context.workdir, f"{stage}_choices",
                                               f"sparsity_{chosen:g}"), stage)
    choose.adopt(stage, source_dir, settings, context, {"auto": {
        "parameter": "target_sparsity", "chosen": chosen, "split": "validation",
        "rule": "validation drop ≤ --max_accuracy_drop (point estimate)",
        "max_accuracy_drop": FLAGS.max_accuracy_drop,
        "candidates": records}})


def cli_main():
    cli_run.entry_point("tftool-prune", NAMES, main, DEFAULTS)
