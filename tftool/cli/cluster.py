"""Weight clustering: `tftool-cluster` / `python -m tftool cluster`.

Example: python -m tftool cluster --workdir=workdir --number_of_clusters=16
Wraps the kernels of WORKDIR/float's model in tfmot's cluster_weights (each kernel keeps
--number_of_clusters distinct values), fine-tunes on the training images without
augmentation (--augment adds it; tftool/jobs.py CLEAN_SOURCES says why), strips ->
WORKDIR/clustered. --from=pruned clusters the pruned model keeping its zeros
(sparsity-preserving clustering, tfmot's collaborative optimization) ->
WORKDIR/pruned_clustered, the input of PCQAT (`tftool-quantize --from=pruned_clustered`).
"""
from tftool import UserError, jobs, stage_runner
from tftool.cli import flags as cli_flags, run as cli_run, shared

from absl import flags

FLAGS = flags.FLAGS
NAMES = cli_flags.DATA_FLAGS + cli_flags.TRAINING_FLAGS + (
    "from", "number_of_clusters", "cluster_centroids_init", "cluster_per_channel",
    "skip_layers")
DEFAULTS = jobs.DEFAULTS["cluster"]


def main(argv):
    del argv
    from tftool.optimize import cluster

    source = getattr(FLAGS, "from")
    if source not in jobs.CLUSTER_OUTPUTS:
        raise UserError(f"--from={source}: tftool-cluster starts from float or pruned")
    cluster.validate(FLAGS.number_of_clusters, FLAGS.cluster_centroids_init, source == "pruned")
    # under make, --from=pruned after a prune skipped because tfmot cannot take the model
    # skips this stage too
    if not shared.input_or_skip("tftool-cluster", jobs.CLUSTER_OUTPUTS[source], source,
                                "tftool-cluster"):
        return
    context, _ = shared.stage_context(jobs.CLUSTER_OUTPUTS[source])
    job, _ = jobs.cluster_job(FLAGS.workdir, shared.train_config(context.dataset),
                              FLAGS.skip_layers, source, FLAGS.number_of_clusters,
                              FLAGS.cluster_centroids_init, FLAGS.cluster_per_channel)
    stage_runner.run(job, context)


def cli_main():
    cli_run.entry_point("tftool-cluster", NAMES, main, DEFAULTS)
