"""Quantization-aware training: `tftool-quantize` / `python -m tftool.quantize`.

Example: python -m tftool.quantize --workdir=workdir
Wraps WORKDIR/float's model with tfmot's quantize_model inside the strategy scope and
fine-tunes it at a low learning rate -> WORKDIR/qat. --from=pruned: the prune-preserving
scheme (keeps the zeros) -> WORKDIR/pqat; --from=clustered: cluster-preserving QAT (CQAT) ->
WORKDIR/cqat; --from=pruned_clustered: sparsity- and cluster-preserving QAT (PCQAT) ->
WORKDIR/pcqat (tfmot's collaborative optimization).
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError, io, stage_runner, stages
from tftool.cli import common
from tftool.optimize import check, qat

from absl import flags

FLAGS = flags.FLAGS
NAMES = common.DATA_FLAGS + common.TRAINING_FLAGS + ("from", "preserve_sparsity")
DEFAULTS = {"epochs": 3, "learning_rate": 1e-4, "lr_schedule": "cosine"}
# (--from, preserve_sparsity) -> (output stage, QAT scheme)
OUTPUTS = {("float", False): ("qat", "default"), ("pruned", True): ("pqat", "prune_preserve"),
           ("clustered", False): ("cqat", "cluster_preserve"),
           ("pruned_clustered", True): ("pcqat", "cluster_prune_preserve")}


def main(argv):
    del argv
    source = getattr(FLAGS, "from")
    pruned = source in ("pruned", "pruned_clustered")
    preserve = pruned if FLAGS.preserve_sparsity is None else FLAGS.preserve_sparsity
    if (source, preserve) not in OUTPUTS:
        raise UserError(f"--from={source} --nopreserve_sparsity would lose the zeros the "
                        f"pruned model has; drop --nopreserve_sparsity" if pruned else
                        f"--preserve_sparsity needs --from=pruned or --from=pruned_clustered "
                        f"(--from={source} has no zeros to preserve)")
    stage, scheme = OUTPUTS[(source, preserve)]
    path = stages.model_path(FLAGS.workdir, source)
    if not stages.has_model(FLAGS.workdir, source):
        raise UserError(stages.missing_model_message(FLAGS.workdir, source, f"--from={source}"))
    context, _ = common.stage_context(stage)
    stage_runner.run(stage_runner.Job(
        stage=stage, config=common.train_config(context.dataset), inputs=[path],
        settings={"from": source, "preserve_sparsity": preserve},
        # Pre-flight: name every layer tfmot cannot quantize before any training time.
        preflight=lambda: check.require_supported(io.load_model(path), "quantize", path, scheme),
        build=lambda: qat.apply(io.load_model(path), scheme=scheme),
        metrics=lambda model: {"from": source, "scheme": scheme, "qat": True}), context)


def cli_main():
    common.entry_point("tftool-quantize", NAMES, main, DEFAULTS)
