"""What a candidate costs on the hardware, measured before any training (MnasNet measures
latency on the device rather than counting FLOPs; MCUNet shapes the space by the memory
limits first).

File size, LiteRT latency and the TFLite Micro flash and tensor arena depend on the
architecture, the input size and the conversion, not on the trained weights: an untrained
candidate is converted as its variant will be (int8 calibrated on a few real images; float16)
with the app metadata, and measured with the benchmark's own timing loop
(benchmark/timing.tflite_latency) and export's microcontroller measurement
(export/micro.footprint). A candidate over a budget is rejected before it trains.
benchmarks/search_figures.py checks that these figures agree with the trained file's.
"""
import dataclasses
from typing import Optional

# A few calibration images are enough for the ranges of an untrained model's int8 file: its
# size and latency do not depend on them.
CALIBRATION_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class Budgets:
    """The user's limits; None = no limit. latency_ms: LiteRT p50, batch 1, at the search's
    thread count; size_kb: the .tflite file; flash_kb / arena_kb: TFLM's model array and
    measured tensor arena (KiB = 1024 bytes); min_accuracy: validation accuracy fraction."""
    latency_ms: Optional[float] = None
    size_kb: Optional[float] = None
    flash_kb: Optional[float] = None
    arena_kb: Optional[float] = None
    min_accuracy: Optional[float] = None

    @property
    def micro(self):
        """Whether the microcontroller figures are needed."""
        return self.flash_kb is not None or self.arena_kb is not None

    def violations(self, figures):
        """{constraint name: amount over (> 0) or under (≤ 0) the budget} for the figures
        present (Optuna's constraint convention: feasible when every value is ≤ 0)."""
        checks = {"latency_ms": ("latency_ms_p50", 1.0),
                  "size_kb": ("size_bytes", 1 / 1024),
                  "flash_kb": ("flash_bytes", 1 / 1024),
                  "arena_kb": ("arena_bytes", 1 / 1024)}
        out = {}
        for budget, (key, scale) in checks.items():
            limit = getattr(self, budget)
            if limit is not None and figures.get(key) is not None:
                out[budget] = figures[key] * scale - limit
        if self.min_accuracy is not None and figures.get("validation_accuracy") is not None:
            out["min_accuracy"] = self.min_accuracy - figures["validation_accuracy"]
        return out

    def over(self, figures):
        """The budgets `figures` break, as "latency_ms over by 0.4 ms" strings."""
        units = {"latency_ms": "ms", "size_kb": "KiB", "flash_kb": "KiB", "arena_kb": "KiB",
                 "min_accuracy": ""}
        return [f"{name} over by {amount:.3g} {units[name]}".strip()
                for name, amount in self.violations(figures).items() if amount > 0]


def conversion_mode(variant):
    """The convert.to_tflite mode whose file has the variant's size and speed."""
    return {"float16": "float16", "clustered_int8": "int8_per_tensor"}.get(variant, "int8")


def app_file(model, variant, representative_dataset, name, dataset):
    """The app .tflite of `model` in `variant`'s conversion, with metadata (as export writes
    it, so its size is the shipped file's). Returns bytes."""
    from tftool.export import convert, driver

    mode = conversion_mode(variant)
    content = convert.to_tflite(model, mode, representative_dataset,
                                **driver.app_conversion(mode))
    return driver.with_metadata(content, name, variant, "float", dataset, "probabilities")[0]


def micro_figures(model, representative_dataset, mode="int8"):
    """{"flash_bytes", "arena_bytes"} of the firmware conversion of `model` in `mode` (int8
    I/O, the trained channel count: export's micro_conversion), measured in TFLite Micro."""
    from tftool.export import convert, micro, micro_export

    content = convert.to_tflite(model, mode, **micro_export.micro_conversion(
        representative_dataset))
    footprint = micro.footprint(content)
    return {"flash_bytes": footprint["flash_bytes"], "arena_bytes": footprint["arena_bytes"]}


def latency(content, num_threads, timing):
    """LiteRT p50 (ms), batch 1, XNNPACK on, `num_threads`: the benchmark's loop."""
    from tftool.benchmark import timing as timing_lib
    from tftool.litert import Runner

    runner = Runner(model_content=content, num_threads=num_threads)
    return timing_lib.tflite_latency(runner, 1, **timing)["latency_ms_p50"]


def measure(candidate, dataset, num_threads, timing, budgets, seed=0):
    """The untrained candidate's hardware figures.

    Args:
      candidate: space.Candidate; dataset: data.Dataset (calibration images, classes).
      num_threads: LiteRT threads; timing: timing.time_calls keyword arguments.
      budgets: Budgets (the micro figures are measured only when a flash/arena budget is set).
    Returns:
      {"size_bytes", "latency_ms_p50", "params", and with micro budgets "flash_bytes",
      "arena_bytes"}.
    """
    import tf_keras as keras

    from tftool import data, models

    size = (candidate.image_size, candidate.image_size)
    shape = size + (dataset.image_shape[-1],)
    keras.backend.clear_session()
    model = models.build(candidate.model, shape, dataset.num_classes,
                         **candidate.build_kwargs())
    representative = data.representative_dataset(dataset, size, CALIBRATION_IMAGES, seed)
    content = app_file(model, candidate.variant, representative, "candidate", dataset)
    figures = {"size_bytes": len(content), "params": int(model.count_params()),
               "latency_ms_p50": latency(content, num_threads, timing)}
    if budgets.micro:  # the untrained float model stands for every integer variant here
        figures.update(micro_figures(model, representative,
                                     conversion_mode(candidate.variant)))
    return figures
