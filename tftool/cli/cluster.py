"""Weight clustering: `tftool-cluster` / `python -m tftool.cluster`.

Example: python -m tftool.cluster --workdir=workdir --number_of_clusters=16
Wraps the kernels of WORKDIR/float's model in tfmot's cluster_weights (each kernel keeps
--number_of_clusters distinct values), fine-tunes, strips -> WORKDIR/clustered. --from=pruned
clusters the pruned model keeping its zeros (sparsity-preserving clustering, tfmot's
collaborative optimization) -> WORKDIR/pruned_clustered, the input of PCQAT
(`tftool-quantize --from=pruned_clustered`).
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, io, stage_runner, stages
from tftool.cli import common
from tftool.optimize import check, cluster

from absl import flags

FLAGS = flags.FLAGS
NAMES = common.DATA_FLAGS + common.TRAINING_FLAGS + (
    "from", "number_of_clusters", "cluster_centroids_init", "cluster_per_channel",
    "skip_layers")
# Fine-tuning at ~1/10 of the float run's rate, as tfmot's clustering guide does.
DEFAULTS = {"epochs": 5, "learning_rate": 3e-4, "lr_schedule": "cosine",
            "skip_layers": list(cluster.DEFAULT_SKIP)}
OUTPUTS = {"float": "clustered", "pruned": "pruned_clustered"}


def main(argv):
    del argv
    source = getattr(FLAGS, "from")
    if source not in OUTPUTS:
        raise UserError(f"--from={source}: tftool-cluster starts from float or pruned")
    stage, preserve = OUTPUTS[source], source == "pruned"
    cluster.validate(FLAGS.number_of_clusters, FLAGS.cluster_centroids_init, preserve)
    path = stages.model_path(FLAGS.workdir, source)
    if not stages.has_model(FLAGS.workdir, source):
        raise UserError(stages.missing_model_message(FLAGS.workdir, source, "tftool-cluster"))
    context, _ = common.stage_context(stage)
    options = dict(number_of_clusters=FLAGS.number_of_clusters,
                   cluster_centroids_init=FLAGS.cluster_centroids_init,
                   per_channel=FLAGS.cluster_per_channel, preserve_sparsity=preserve)
    stage_runner.run(stage_runner.Job(
        stage=stage, config=common.train_config(context.dataset), inputs=[path],
        settings={"from": source, **options, "skip_layers": list(FLAGS.skip_layers)},
        preflight=lambda: cluster.select_layers(io.load_model(path), FLAGS.skip_layers),
        build=lambda: cluster.apply(io.load_model(path), skip=FLAGS.skip_layers, **options),
        finish=cluster.strip,
        metrics=lambda model: {"from": source, **options, "unique_values": cluster.unique_values(
            model, FLAGS.cluster_per_channel)}), context)


def cli_main():
    common.entry_point("tftool-cluster", NAMES, main, DEFAULTS)
