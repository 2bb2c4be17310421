"""Quantization-aware training: `tftool-quantize` / `python -m tftool quantize`.

Example: python -m tftool quantize --workdir=workdir
Wraps WORKDIR/float's model with tfmot's quantize_model inside the strategy scope and
fine-tunes it at a low learning rate -> WORKDIR/qat. --from=pruned: the prune-preserving
scheme (keeps the zeros) -> WORKDIR/pqat; --from=clustered: cluster-preserving QAT (CQAT) ->
WORKDIR/cqat; --from=pruned_clustered: sparsity- and cluster-preserving QAT (PCQAT) ->
WORKDIR/pcqat (tfmot's collaborative optimization). The clustered models fine-tune without
augmentation unless --augment is given (their BN is folded: tftool/jobs.py CLEAN_SOURCES).
"""
import dataclasses

from tftool import UserError, jobs, stage_runner
from tftool.cli import flags as cli_flags, run as cli_run, shared

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + cli_flags.TRAINING_FLAGS + ("from", "preserve_sparsity")
DEFAULTS = jobs.DEFAULTS["quantize"]


def main(argv):
    del argv
    source = getattr(FLAGS, "from")
    pruned = source in ("pruned", "pruned_clustered")
    preserve = pruned if FLAGS.preserve_sparsity is None else FLAGS.preserve_sparsity
    if (source, preserve) not in jobs.QAT_OUTPUTS:
        raise UserError(f"--from={source} --nopreserve_sparsity would lose the zeros the "
                        f"pruned model has; drop --nopreserve_sparsity" if pruned else
                        f"--preserve_sparsity needs --from=pruned or --from=pruned_clustered "
                        f"(--from={source} has no zeros to preserve)")
    stage, _ = jobs.QAT_OUTPUTS[(source, preserve)]
    # under make, an input stage skipped because tfmot cannot take the model skips this one
    if not shared.input_or_skip("tftool-quantize", stage, source, f"--from={source}"):
        return
    context, _ = shared.stage_context(stage)
    config = shared.train_config(context.dataset)
    if source in jobs.CLEAN_SOURCES and not FLAGS["augment"].present:
        config = dataclasses.replace(config, augment=False)  # folded BN: jobs.CLEAN_SOURCES
    job, _ = jobs.qat_job(FLAGS.workdir, config, source, preserve)
    shared.run_or_skip("tftool-quantize", lambda: stage_runner.run(job, context), stage)


def cli_main():
    cli_run.entry_point("tftool-quantize", NAMES, main, DEFAULTS)
