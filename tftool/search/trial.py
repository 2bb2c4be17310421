"""One trial of `tftool-search`: a real tftool run of a candidate in WORKDIR/search/trial_<n>/.

The float model and the variant's stages are the same Jobs the entry points run (tftool/
jobs.py) through the one stage runner, scored on the validation split only; the variant is
written by export's own code (export/driver.py, the accuracy gate off: the search judges by
its objectives) into trial_<n>/exported/, and timed with the benchmark's loop. A killed trial's
stage folders resume from their backup/ like any stage's.
"""
import dataclasses
import os

from tftool import stage_runner, stages


@dataclasses.dataclass
class Settings:
    """What every trial of a search shares: epochs of the float model, the seed, LiteRT
    threads, timing.time_calls keyword arguments, budgets (hardware.Budgets), the data
    settings config.json records."""
    epochs: int
    seed: int
    num_threads: int
    timing: dict
    budgets: object
    data_settings: dict


def variant_dir(workdir):
    """Where a trial's exported file goes: WORKDIR/search/trial_<n>/exported."""
    return os.path.join(workdir, "exported")


def run(candidate, workdir, dataset, strategy, settings):
    """Trains and exports `candidate` in `workdir`; returns its measured figures.

    Returns: {"validation_accuracy", "validation_accuracy_interval", "validation_examples",
      "size_bytes", "latency_ms_p50", "file", and with micro budgets "flash_bytes",
      "arena_bytes"}.
    Raises: UserError: a stage refuses (pre-flight, near chance is written, not refused).
    """
    import tf_keras as keras

    from tftool import data, fileio, jobs
    from tftool.benchmark import rows
    from tftool.export import driver
    from tftool.search import hardware
    from tftool.train import fit

    size = (candidate.image_size, candidate.image_size)
    context = stage_runner.Context(workdir=workdir, strategy=strategy, dataset=dataset,
                                   image_size=size, flags_text="",
                                   allow_chance_accuracy=True, warn_chance=False,
                                   splits=("validation",))
    keras.backend.clear_session()
    knobs = {k: v for k, v in candidate.build_kwargs().items() if v is not None}
    knobs["num_stages"] = knobs.pop("stages", None)  # the builder's `stages`: jobs.float_job
    stage_runner.run(jobs.float_job(
        jobs.train_config("float", epochs=settings.epochs, seed=settings.seed), dataset,
        context.input_shape, {**settings.data_settings, "image_size": candidate.image_size},
        model=candidate.model, **knobs), context)
    if candidate.variant == "qat_int8":
        job, _ = jobs.qat_job(workdir, jobs.train_config("quantize", seed=settings.seed))
        stage_runner.run(job, context)
    elif candidate.variant == "pqat_int8":
        config = jobs.train_config("prune", seed=settings.seed)
        total = config.epochs * fit.steps_per_epoch_of(dataset.num_train, config,
                                                       strategy.num_replicas_in_sync)
        job, _ = jobs.prune_job(workdir, config, total, candidate.target_sparsity,
                                jobs.DEFAULTS["prune"]["skip_layers"])
        stage_runner.run(job, context)
        job, _ = jobs.qat_job(workdir, jobs.train_config("quantize", seed=settings.seed),
                              source="pruned")
        stage_runner.run(job, context)
    elif candidate.variant == "clustered_int8":
        job, _ = jobs.cluster_job(workdir, jobs.train_config("cluster", seed=settings.seed),
                                  jobs.DEFAULTS["cluster"]["skip_layers"])
        stage_runner.run(job, context)
    representative = data.representative_dataset(dataset, size, 100, settings.seed)
    name = "trial"
    driver.export(
        workdir, variant_dir(workdir), name, dataset, size, [candidate.variant],
        representative, max_accuracy_drop=1.0, selective=False, splits=("validation",),
        debugger=False)
    path = os.path.join(variant_dir(workdir), f"{name}_{candidate.variant}.tflite")
    card = fileio.read_json_object(os.path.splitext(path)[0] + ".json")
    with open(path, "rb") as f:
        content = f.read()
    figures = {"validation_accuracy": card["validation_accuracy"],
               "validation_accuracy_interval": card["validation_accuracy_interval"],
               "validation_examples": card["validation_examples"],
               "size_bytes": rows.file_sizes(path)["size_bytes"],
               "latency_ms_p50": hardware.latency(content, settings.num_threads,
                                                  settings.timing),
               "file": os.path.abspath(path)}
    if settings.budgets.micro:
        source_stage, mode = stages.VARIANTS[candidate.variant]
        model = stage_runner.load_stage_model(workdir, source_stage)
        figures.update(hardware.micro_figures(model, representative, mode))
    return figures
