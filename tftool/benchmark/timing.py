"""Accuracy, size and latency of Keras and TFLite models, as plain dicts (rows).

Latency follows TFLite's benchmark_model tool
(https://www.tensorflow.org/lite/performance/measurement, tensorflow/lite/tools/benchmark):
warm-up runs first (at least `warmup_runs` and `warmup_seconds`, benchmark_model's
--warmup_runs=1 / --warmup_min_secs=0.5), then timed runs of one inference on a fixed input
until there are at least `min_runs` of them *and* `min_seconds` have passed (its --num_runs=50
/ --min_secs=1): TIMING's standard preset, beside its quick one (make's benchmark, the
search's trials). Reported: p50, p90, p99 and mean in milliseconds, the coefficient of
variation (std / mean of the per-run times) and, for batches, throughput in images/s.

The Keras float model is timed the same way through a `tf.function` with a fixed input
signature. TensorFlow's thread pools can be set only once per process, before its first op,
so each Keras thread count is timed in a fresh process (tftool/measure.py); TFLite
interpreters take `num_threads` per instance and are timed in-process.
"""
import time

import numpy as np

# The timing presets, the one home of the timing defaults (tftool-benchmark --timing, whose
# --min_runs, --min_seconds, --warmup_runs and --warmup_seconds they fill; time_calls' keyword
# defaults are the standard preset's):
#   standard  TFLite benchmark_model's own defaults (--num_runs=50 --min_secs=1
#             --warmup_runs=1 --warmup_min_secs=0.5): tftool-benchmark's default.
#   quick     0.3-s rows after 0.15 s of warm-up: the first look (make benchmark) and every
#             trial of tftool-search, where a latency is one row and many are timed.
TIMING = {"standard": {"min_runs": 50, "min_seconds": 1.0, "warmup_runs": 1,
                       "warmup_seconds": 0.5},
          "quick": {"min_runs": 50, "min_seconds": 0.3, "warmup_runs": 1,
                    "warmup_seconds": 0.15}}
_STANDARD = TIMING["standard"]


def flag_defaults(preset):
    """The flag defaults of an entry point that times with `preset` (a key of TIMING):
    {"timing": preset, min_runs, min_seconds, warmup_runs, warmup_seconds}, so its --help
    shows the preset's values."""
    return {"timing": preset, **TIMING[preset]}


def resolve(preset, given):
    """time_calls' keyword arguments: TIMING[preset], each replaced by its value in `given`
    ({name: value} of the timing flags given explicitly; other keys are ignored)."""
    return {name: given.get(name, value) for name, value in TIMING[preset].items()}


def set_tf_threads(num_threads):
    """Sets TF's intra- and inter-op thread pools to `num_threads` (before TF's first op)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:
        # TensorFlow already ran an op in this process (an in-process caller): its pools are
        # fixed. Only the accuracy pass runs here; Keras latency is timed in fresh processes.
        pass


def time_calls(fn, min_runs=_STANDARD["min_runs"], min_seconds=_STANDARD["min_seconds"],
               warmup_runs=_STANDARD["warmup_runs"], warmup_seconds=_STANDARD["warmup_seconds"]):
    """Warms up, then times calls of fn() (benchmark_model's run loop); the defaults are
    TIMING["standard"].

    Warm-up: fn() untimed until both `warmup_runs` calls and `warmup_seconds` have passed.
    Timing: fn() until both `min_runs` timed calls and `min_seconds` of timed calls.
    Returns: float64 [runs] of seconds per call, runs ≥ min_runs, in call order.
    """
    start = time.perf_counter()
    done = 0
    while done < warmup_runs or time.perf_counter() - start < warmup_seconds:
        fn()
        done += 1
    times = []
    total = 0.0
    while len(times) < min_runs or total < min_seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return np.asarray(times, np.float64)


NOISE_BLOCKS = 10


def latency_stats(times, batch_size=1):
    """Seconds per call -> latency figures.

    Args:
      times: float [runs] seconds per call of one batch of `batch_size` images, in call order.
    Returns: {"latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean" (ms per
      batch), "latency_cv" (std / mean of the per-run times), "p50_cv" (see below),
      "throughput_ips" (images/s at the p50), "timed_runs", "timed_seconds"}.

    "p50_cv" is what the noisy flag uses: the runs are cut into NOISE_BLOCKS consecutive
    blocks and it is the coefficient of variation (std / mean) of the blocks' medians, i.e.
    how much the p50 moved while we measured. The classic CV of per-run times ("latency_cv",
    reported too) is dominated by rare preemptions on a shared CPU: measured on digits, a row
    with p50 0.016 ms and p90 0.017 ms had a CV of 10.5 from a few 1-ms outliers.
    """
    ms = np.asarray(times, np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(np.mean(ms))
    blocks = [np.median(b) for b in np.array_split(ms, min(NOISE_BLOCKS, len(ms)))]
    return {"latency_ms_p50": float(p50), "latency_ms_p90": float(p90),
            "latency_ms_p99": float(p99), "latency_ms_mean": mean,
            "latency_cv": float(np.std(ms) / mean) if mean > 0 else 0.0,
            "p50_cv": float(np.std(blocks) / np.mean(blocks)) if mean > 0 else 0.0,
            "throughput_ips": float(batch_size * 1e3 / p50) if p50 > 0 else None,
            "timed_runs": int(len(ms)), "timed_seconds": float(np.sum(ms) / 1e3)}


def fixed_input(batch_size, input_shape, seed=0):
    """The timing input: float32 [batch_size, *input_shape] uniform in [0, 1), seeded."""
    return np.random.RandomState(seed).rand(batch_size, *input_shape).astype(np.float32)


def keras_latency(model, input_shape, batch_size=1, **timing):
    """Latency of `model` on a fixed float32 [batch_size, *input_shape] input (latency_stats).

    The model is called through a tf.function with a fixed input signature (one trace, no
    retracing); each timed call includes copying the logits back to numpy, as a TFLite
    invoke leaves them in its output tensor. TF's thread pools must be set by the caller.
    `timing`: keyword arguments of time_calls.
    """
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size, *input_shape], tf.float32)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    x = tf.constant(fixed_input(batch_size, input_shape))
    return latency_stats(time_calls(lambda: fn(x).numpy(), **timing), batch_size)


def tflite_latency(runner, batch_size=1, **timing):
    """Latency of `runner.invoke()` (litert.Runner) on a fixed input batch (latency_stats).

    The input tensor is resized to `batch_size` first (Interpreter.resize_tensor_input).
    """
    from tftool.litert import to_pixels

    runner.set_input(to_pixels(fixed_input(batch_size, runner.input_shape)))
    return latency_stats(time_calls(runner.invoke, **timing), batch_size)


def flag_noisy(rows, max_cv):
    """Sets row["noisy"] = p50_cv > max_cv on every row (in place); returns rows.

    See latency_stats for p50_cv (the spread of the p50 over consecutive blocks of runs).
    """
    for r in rows:
        r["noisy"] = bool(r.get("p50_cv") is not None and r["p50_cv"] > max_cv)
    return rows


