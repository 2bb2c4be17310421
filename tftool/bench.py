"""Accuracy, size and latency of Keras and TFLite models, as plain dicts (rows).

Latency follows TFLite's benchmark_model tool
(https://www.tensorflow.org/lite/performance/measurement, tensorflow/lite/tools/benchmark):
warm-up runs first (at least `warmup_runs` and `warmup_seconds`, benchmark_model's
--warmup_runs=1 / --warmup_min_secs=0.5), then timed runs of one inference on a fixed input
until there are at least `min_runs` of them *and* `min_seconds` have passed (its --num_runs=50
/ --min_secs=1). Reported: p50, p90, p99 and mean in milliseconds, the coefficient of
variation (std / mean of the per-run times) and, for batches, throughput in images/s.

The Keras float model is timed the same way through a `tf.function` with a fixed input
signature. TensorFlow's thread pools can be set only once per process, before its first op,
so each Keras thread count is timed in a fresh process (tftool/measure.py); TFLite
interpreters take `num_threads` per instance and are timed in-process.
"""
import gzip
import os
import time

import numpy as np

ROW_KEYS = ("name", "variant", "format", "accuracy", "agreement", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "latency_ms_p90", "num_threads", "batch_size")

# Timing defaults: TFLite benchmark_model's own.
TIMING_DEFAULTS = {"min_runs": 50, "min_seconds": 1.0, "warmup_runs": 1, "warmup_seconds": 0.5}


def set_tf_threads(num_threads):
    """Sets TF's intra- and inter-op thread pools to `num_threads` (before TF's first op)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(num_threads)
    tf.config.threading.set_inter_op_parallelism_threads(num_threads)


def file_sizes(path):
    """{"size_bytes": raw size, "gzip_bytes": size after gzip -9} of a file, in bytes."""
    with open(path, "rb") as f:
        content = f.read()
    return {"size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9))}


def time_calls(fn, min_runs=50, min_seconds=1.0, warmup_runs=1, warmup_seconds=0.5):
    """Warms up, then times calls of fn() (benchmark_model's run loop).

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
    """Latency of `runner.invoke()` (runner.Runner) on a fixed input batch (latency_stats).

    The input tensor is resized to `batch_size` first (Interpreter.resize_tensor_input).
    """
    runner.set_input(fixed_input(batch_size, runner.input_shape))
    return latency_stats(time_calls(runner.invoke, **timing), batch_size)


def accuracy_stats(logits, labels, reference_predictions=None):
    """Top-1 accuracy and agreement with a reference model's top-1 predictions.

    Args:
      logits: float32 [N, K]; labels: int [N]; reference_predictions: int [N] or None.
    Returns: {"accuracy": float in [0, 1], "agreement": float in [0, 1] or None}.
    """
    predictions = np.argmax(logits, axis=-1)
    agreement = None
    if reference_predictions is not None:
        agreement = float(np.mean(predictions == reference_predictions))
    return {"accuracy": float(np.mean(predictions == labels)), "agreement": agreement}


def per_class_accuracy(logits, labels, class_names):
    """{class name: top-1 accuracy on that class's test images} in output-index order.

    Args: logits float [N, K]; labels int [N]; class_names: K names, index i = output i.
    A class without test images maps to None.
    """
    predictions = np.argmax(logits, axis=-1)
    result = {}
    for index, class_name in enumerate(class_names):
        mask = labels == index
        result[str(class_name)] = float(np.mean(predictions[mask] == index)) if mask.any() else None
    return result


def accuracy_row(logits, labels, reference_logits, class_names):
    """Everything about a model's outputs on the whole test split, for a benchmark row.

    Args:
      logits: float32 [N, K] (dequantized for int8 outputs); labels: int [N];
      reference_logits: float32 [N, K] of the float Keras model; class_names: K names.
    Returns: {"accuracy", "agreement" (share of images where top-1 equals the float model's),
      "mean_abs_dlogit" (mean over N×K of |logit − float logit|, in logit units),
      "per_class_accuracy" ({name: accuracy})}.
    """
    logits = np.asarray(logits, np.float32)
    reference_logits = np.asarray(reference_logits, np.float32)
    return {**accuracy_stats(logits, labels, np.argmax(reference_logits, -1)),
            "mean_abs_dlogit": float(np.mean(np.abs(logits - reference_logits))),
            "per_class_accuracy": per_class_accuracy(logits, labels, class_names)}


def row(name, variant, fmt, accuracy, sizes, latency, num_threads, batch_size, **extra):
    """One benchmark row: bench.ROW_KEYS first (in that order), then the other figures.

    Args:
      accuracy: accuracy_row's dict; sizes: file_sizes' dict; latency: latency_stats' dict.
      extra: more keys (xnnpack, path, peak_rss_bytes, ...), appended after the figures.
    """
    result = {"name": name, "variant": variant, "format": fmt,
              "accuracy": accuracy["accuracy"], "agreement": accuracy["agreement"],
              "size_bytes": sizes["size_bytes"], "gzip_bytes": sizes["gzip_bytes"],
              "latency_ms_p50": latency["latency_ms_p50"],
              "latency_ms_p90": latency["latency_ms_p90"],
              "num_threads": num_threads, "batch_size": batch_size}
    result.update(extra)
    result.update({k: v for k, v in latency.items() if k not in result})
    result.update({k: v for k, v in accuracy.items() if k not in result})
    return result


def flag_noisy(rows, max_cv):
    """Sets row["noisy"] = p50_cv > max_cv on every row (in place); returns rows.

    See latency_stats for p50_cv (the spread of the p50 over consecutive blocks of runs).
    """
    for r in rows:
        r["noisy"] = bool(r.get("p50_cv") is not None and r["p50_cv"] > max_cv)
    return rows


def tflite_rows(path, name, variant, images, labels, reference_logits, class_names,
                threads=(1,), batch_sizes=(1,), xnnpack=(True, False), timing=None):
    """Benchmark rows of one .tflite file: one per (xnnpack, num_threads, batch_size).

    Accuracy is measured once per XNNPACK setting on the whole test split (images: float32
    [N, H, W, C] in [0, 1]; the reference kernels may round int8 differently), with the
    largest thread count; latency on a fixed random batch per row. Rows carry
    "xnnpack" (bool), "path", "sparsity" and "kernel_sparsity" (sparsity_stats).
    """
    from tftool.runner import Runner

    timing = timing or {}
    sizes = file_sizes(path)
    rows = []
    weights = None
    for use_xnnpack in xnnpack:
        runner = Runner(model_path=path, num_threads=max(threads), use_xnnpack=use_xnnpack)
        weights = weights or sparsity_stats(path)  # after Runner has vetted the file
        accuracy = accuracy_row(runner(images), labels, reference_logits, class_names)
        for num_threads in threads:
            runner = Runner(model_path=path, num_threads=num_threads, use_xnnpack=use_xnnpack)
            for batch_size in batch_sizes:
                latency = tflite_latency(runner, batch_size, **timing)
                rows.append(row(name, variant, "tflite", accuracy, sizes, latency, num_threads,
                                batch_size, xnnpack=use_xnnpack, path=os.path.abspath(path),
                                **weights))
    return rows


def keras_rows(model_path, name, logits, labels, class_names, input_shape, threads=(1,),
               batch_sizes=(1,), timing=None):
    """Benchmark rows of the float Keras model: one per (num_threads, batch_size).

    Args:
      logits: float32 [N, K], the model's own test logits (accuracy; agreement is 1 by
        definition); input_shape: (H, W, C).
    Latency is measured by tftool/measure.py in a fresh process per thread count (TF's
    thread pools are fixed at its first op), GPUs hidden, so it runs on the same CPU threads
    as TFLite. Rows carry "xnnpack": None.
    """
    from tftool import measure

    accuracy = accuracy_row(logits, labels, logits, class_names)
    sizes = file_sizes(model_path)
    rows = []
    for num_threads in threads:
        latencies = measure.in_subprocess(
            {"task": "keras_latency", "model_path": os.path.abspath(model_path),
             "input_shape": list(input_shape), "num_threads": num_threads,
             "batch_sizes": list(batch_sizes), "timing": timing or {}})
        for batch_size, latency in zip(batch_sizes, latencies):
            rows.append(row(name, "float", "keras", accuracy, sizes, latency, num_threads,
                            batch_size, xnnpack=None, path=os.path.abspath(model_path)))
    return rows


VERSIONED = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "numpy")


def versions():
    """{distribution: version} of the converter/runtime packages and tftool itself."""
    from importlib import metadata

    import tftool

    result = {}
    for dist in VERSIONED:
        try:
            result[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            result[dist] = None
    result["tftool"] = tftool.__version__
    return result


def sparsity_stats(path):
    """{"sparsity": zero fraction over all conv/dense kernels of a .tflite (float in [0, 1]),
    "kernel_sparsity": [{"op", "tensor", "sparsity"}] per kernel}, read from the flatbuffer's
    weight tensors (tftool.sparsity)."""
    from tftool import sparsity

    kernels = sparsity.kernel_sparsity(model_path=path)
    return {"sparsity": sparsity.tflite_sparsity(kernels=kernels),
            "kernel_sparsity": [{"op": k["op"], "tensor": k["tensor"],
                                 "sparsity": k["zeros"] / k["size"]} for k in kernels]}
