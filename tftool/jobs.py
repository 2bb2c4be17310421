"""The stage Jobs (stage_runner.Job) of the training stages, built from plain arguments.

The entry points (cli/train.py, quantize.py, prune.py, cluster.py) build their Job here from
their flags, and `tftool-search` builds the same Jobs for every trial: one definition of what
a stage trains and records, whoever runs it. DEFAULTS holds each stage's training defaults,
their one home: the entry points' flag defaults (cli/flags.py's per-stage flags have no value
of their own) and what the search trains its trials with; tests/test_defaults.py checks that
no other module writes them.
"""
import dataclasses
import os

from tftool import fileio, stage_runner, stages
from tftool.train import presets

FINE_TUNING = presets.FINE_TUNING  # what every later stage shares (train/presets.py)
# Each stage's training defaults. The float stage's are the digits preset's (train/presets.py,
# their one home; what `tftool-search` trains its trials with); tftool-train chooses a preset
# by the data instead, so its flags default to None there (cli/train.py).
DEFAULTS = {
    "float": {name: getattr(presets.DIGITS, name) for name in (
        "epochs", "learning_rate", "lr_schedule", "warmup_epochs")},
    "quantize": {**FINE_TUNING, "epochs": 3, "learning_rate": 1e-4, "lr_schedule": "cosine"},
    # Fine-tuning at 1e-4: with BN statistics re-estimated the float model reached 0.9944 on
    # digits, and 80%-pruned models fine-tuned 10 epochs scored 0.9833 at 1e-3 (also at 15
    # and 20 epochs: 1.1 points, refused by the gate), 0.9861 at 3e-4, 0.9889 at 1e-4.
    # skip_layers: every kind optimize/prune.py's SKIP_KINDS names (it says why each).
    "prune": {**FINE_TUNING, "epochs": 10, "learning_rate": 1e-4, "lr_schedule": "cosine",
              "skip_layers": ["first_conv", "last_dense", "depthwise"]},
    # Fine-tuning at ~1/10 of the float run's rate, as tfmot's clustering guide does, on the
    # training images without augmentation (CLEAN_SOURCES says why). skip_layers: the first
    # convolution sees raw pixels and holds few weights (3x3x1x8 = 72 in small_cnn):
    # clustering it saves almost nothing, and per channel it has fewer weights (9) than
    # clusters.
    "cluster": {**FINE_TUNING, "epochs": 5, "learning_rate": 3e-4, "lr_schedule": "cosine",
                "augment": False, "skip_layers": ["first_conv"]},
    # tftool-distill's student and baseline (a teacher it trains itself too).
    # epochs None: the teacher's (optimize/distill.py: longer gained a student nothing).
    # augment False: the student and its baseline train on the clean training images, the
    # teacher labelling the same images (optimize/distill.py: on the development photos
    # augmentation cost the width-12 student about 5 points at the teacher's 15 epochs; without
    # it distillation gained 1.05-1.80 points on 3 seeds, with it -0.25-1.35); --augment brings
    # it back for both.
    "distill": {**FINE_TUNING, "epochs": None, "learning_rate": 3e-3,
                "lr_schedule": "cosine_warmup", "warmup_epochs": 1.0, "augment": False},
}
# tftool-distill's epochs for a teacher it trains itself (--teacher=small_cnn), and so for its
# student, when --epochs is not given.
NAMED_TEACHER_EPOCHS = 30
# Stages whose fine-tuning sees the training images without augmentation by default (an
# explicit --augment still wins): clustering and the QAT of a clustered model. Clustering folds
# batch normalization into the kernels first (optimize/cluster.py), so nothing re-estimates the
# model's normalization on clean images after fine-tuning, as train/batchnorm.py does for every
# model that keeps its BN layers; fine-tuned on augmented images (black borders, rotation,
# contrast) the folded model drifts towards them. Measured on the development photos (small_cnn
# width 32 trained 15 epochs, 16 clusters, 5 epochs from 3e-4; benchmarks/compress_defaults.py
# --study=cluster), change against the float model in test points [95% paired interval]:
#   augmented: seed 0 -2.80 [-4.31, -1.29] (also -2.55 at 1e-4, -2.80 at 3e-5, -2.60 per
#              channel, -2.55 with the logits layer unclustered; before any fine-tuning the
#              clustered model lost 0.6 validation points)
#   clean:     seeds 0/1/2 +3.75 [+2.38, +5.12], +3.10 [+1.70, +4.50], +2.95 [+1.48, +4.42]
# (Clean fine-tuning lifts a model trained with augmentation on a short schedule: pruning to
# 0.7 gained +3.25 [+1.77, +4.73] with --noaugment, against +0.05 with it. The BN-keeping
# stages keep augmentation, so their comparison with the float model stays like for like.)
CLEAN_SOURCES = ("clustered", "pruned_clustered")
# (--from, preserve_sparsity) of tftool-quantize -> (output stage, QAT scheme)
QAT_OUTPUTS = {("float", False): ("qat", "default"),
               ("pruned", True): ("pqat", "prune_preserve"),
               ("clustered", False): ("cqat", "cluster_preserve"),
               ("pruned_clustered", True): ("pcqat", "cluster_prune_preserve")}
CLUSTER_OUTPUTS = {"float": "clustered", "pruned": "pruned_clustered"}


def train_config(stage_kind, **overrides):
    """A train.fit.TrainConfig with DEFAULTS[stage_kind] (its TrainConfig fields; not
    skip_layers) and `overrides` (fields of TrainConfig). A warm-up taken from the defaults is
    scaled to the run (not explicit)."""
    from tftool.train import fit

    fields = {f.name for f in dataclasses.fields(fit.TrainConfig)}
    values = {**{k: v for k, v in DEFAULTS[stage_kind].items() if k in fields}, **overrides}
    values.setdefault("warmup_explicit", "warmup_epochs" in overrides)
    return fit.TrainConfig(**values)


def float_job(config, dataset, input_shape, settings, model=presets.DIGITS.model, width=None,
              alpha=1.0, weights=None, num_stages=None, minimalistic=False,
              freeze_backbone_epochs=0, metrics_extra=None, whitening=True):
    """The float stage: models.build(model, input_shape, classes, ...) trained on the labels.

    Args:
      config: TrainConfig; dataset: data.Dataset; input_shape: (H, W, C).
      settings: the data settings config.json records (stage_runner.data_settings).
      num_stages: small_cnn's depth (--num_stages), its builder's `stages` argument; config.json
        and metrics.json record it as "stages", as they record the builder's other arguments
        under their own names (width, alpha, ...), so workdirs made before the flag's rename
        resume and skip as before.
      metrics_extra: more metrics.json figures (the precision policy, ...).
      whitening: initialize a whitening stem (airbench's) from the training images
        (models.init_whitening); models without one ignore it.
    """
    from tftool import models

    width = models.resolved(model, width=width)["width"]  # the builder's default when None
    build_kwargs = {"width": width, "alpha": alpha, "weights": weights, "stages": num_stages,
                    "minimalistic": minimalistic}

    def build():
        built = models.build(model, input_shape, dataset.num_classes, **build_kwargs)
        if whitening and models.WHITENING_LAYER in [layer.name for layer in built.layers]:
            from tftool import data

            models.init_whitening(built, data.sample_pixels(
                dataset, tuple(input_shape[:2]), models.WHITENING_IMAGES, seed=config.seed))
        return built

    return stage_runner.Job(
        stage="float", config=config,
        build=build,
        settings={**settings, "model": model, "width": width, "alpha": alpha,
                  "weights": weights, "freeze_backbone_epochs": freeze_backbone_epochs,
                  **({"whitening": whitening} if model == "airbench" else {}),
                  **({"stages": num_stages} if num_stages is not None else {}),
                  **({"minimalistic": True} if minimalistic else {})},
        # airbench trains with a scale on its logits; the saved model has it folded in
        finish=models.fold_logit_scale,
        free=("skip_corrupt",),
        metrics=lambda m: {"model": model, "dataset": dataset.name,
                           "input_shape": list(input_shape), "class_names": dataset.class_names,
                           **({"stages": num_stages} if num_stages is not None else {}),
                           **(metrics_extra or {})})


def qat_job(workdir, config, source="float", preserve_sparsity=None):
    """QAT fine-tuning of WORKDIR/<source>'s model (tfmot; the scheme follows the source:
    QAT_OUTPUTS). Returns (Job, output stage).
    Raises: ValueError: a (source, preserve_sparsity) pair QAT_OUTPUTS does not have."""
    from tftool.optimize import check, qat

    pruned = source in ("pruned", "pruned_clustered")
    preserve = pruned if preserve_sparsity is None else preserve_sparsity
    if (source, preserve) not in QAT_OUTPUTS:
        raise ValueError(f"no QAT stage for --from={source} with preserve_sparsity={preserve}")
    stage, scheme = QAT_OUTPUTS[(source, preserve)]
    path = stages.model_path(workdir, source)
    return stage_runner.Job(
        stage=stage, config=config, inputs=[path],
        settings={"from": source, "preserve_sparsity": preserve},
        # Pre-flight: name every layer tfmot cannot quantize before any training time.
        preflight=lambda: check.require_supported(fileio.load_model(path), "quantize", path,
                                                  scheme),
        build=lambda: qat.apply(fileio.load_model(path), scheme=scheme),
        metrics=lambda model: {"from": source, "scheme": scheme, "qat": True}), stage


def prune_job(workdir, config, total_steps, target_sparsity, skip_layers, initial_sparsity=0.0,
              begin_step=0, end_step=None, frequency=None, m_by_n=None):
    """Magnitude pruning of WORKDIR/float's model to `target_sparsity` (or m:n), fine-tuned
    (optimize/prune.py, Zhu & Gupta 2017). Returns (Job, output stage).
    Raises: UserError: a schedule that cannot reach its target (prune.schedule_steps); its
      pre-flight: a layer tfmot cannot prune (check.Unsupported), layers to skip that the
      model lacks or that leave nothing to prune."""
    from tftool.optimize import check, prune

    stage = "pruned_2by4" if m_by_n else "pruned"
    path = stages.model_path(workdir, "float")
    source = fileio.load_model(path)
    schedule = None if m_by_n else prune.schedule_steps(
        total_steps, initial_sparsity, target_sparsity, begin_step, end_step, frequency)
    target = {"sparsity_m_by_n": list(m_by_n)} if m_by_n else {
        "target_sparsity": target_sparsity, "initial_sparsity": initial_sparsity}
    return stage_runner.Job(
        stage=stage, config=config, inputs=[path],
        settings={"from": "float", **target, "skip_layers": list(skip_layers)},
        # tfmot's verdict first (under make a model it cannot prune is skipped: cli/shared.py
        # run_or_skip), then the layers --skip_layers leaves
        preflight=lambda: (check.require_supported(source, "prune", path),
                           prune.select_layers(source, skip_layers)),
        build=lambda: prune.apply(fileio.load_model(path), schedule, skip_layers, m_by_n),
        callbacks=lambda out: prune.callbacks(os.path.join(out, "logs", "pruning")),
        finish=prune.strip,
        metrics=lambda model: {
            "from": "float",
            "sparsity": prune.overall_sparsity(model, prune.select_layers(source, skip_layers)),
            "layer_sparsity": prune.layer_sparsity(model),
            "pruned_layers": prune.select_layers(source, skip_layers),
            "schedule": {**(schedule.as_dict() if schedule else target),
                         "total_steps": total_steps}}), stage


def cluster_job(workdir, config, skip_layers, source="float", number_of_clusters=16,
                cluster_centroids_init="linear", per_channel=False):
    """Weight clustering of WORKDIR/<source>'s model (tfmot; optimize/cluster.py), fine-tuned.
    Returns (Job, output stage). Raises: UserError: bad options (cluster.validate)."""
    from tftool.optimize import cluster

    stage, preserve = CLUSTER_OUTPUTS[source], source == "pruned"
    cluster.validate(number_of_clusters, cluster_centroids_init, preserve)
    path = stages.model_path(workdir, source)
    options = dict(number_of_clusters=number_of_clusters,
                   cluster_centroids_init=cluster_centroids_init, per_channel=per_channel,
                   preserve_sparsity=preserve)
    return stage_runner.Job(
        stage=stage, config=config, inputs=[path],
        settings={"from": source, **options, "skip_layers": list(skip_layers)},
        preflight=lambda: cluster.select_layers(fileio.load_model(path), skip_layers),
        build=lambda: cluster.apply(fileio.load_model(path), skip=skip_layers, **options),
        finish=cluster.strip,
        metrics=lambda model: {"from": source, **options, "unique_values": cluster.unique_values(
            model, per_channel)}), stage
