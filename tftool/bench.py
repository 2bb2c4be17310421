"""Accuracy, size and latency of Keras and TFLite models, as plain dicts (rows).

Latency follows TFLite's benchmark_model practice
(https://www.tensorflow.org/lite/performance/measurement): warm-up runs first, then many
timed runs of one inference on a fixed input, reported as median (p50) and p90 in
milliseconds. The Keras float model is timed the same way through a `tf.function` with a
fixed input signature; set TensorFlow's thread pools (`set_tf_threads`) before its first op
so both runtimes use the same CPU threads.
"""
import gzip
import os
import time

import numpy as np

ROW_KEYS = ("name", "variant", "format", "accuracy", "agreement", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "latency_ms_p90", "num_threads", "batch_size")


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


def time_calls(fn, warmup=50, runs=500):
    """Calls fn() `warmup` times untimed, then `runs` times timed.

    Returns: float64 [runs] of seconds per call.
    """
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times


def latency_stats(times):
    """Seconds per call -> {"latency_ms_p50", "latency_ms_p90"} in milliseconds."""
    p50, p90 = np.percentile(np.asarray(times) * 1e3, [50, 90])
    return {"latency_ms_p50": float(p50), "latency_ms_p90": float(p90)}


def keras_latency(model, input_shape, batch_size=1, warmup=50, runs=500):
    """Latency of `model` on a fixed float32 [batch_size, *input_shape] input, in ms.

    The model is called through a tf.function with a fixed input signature (one trace, no
    retracing); each timed call includes copying the logits back to numpy.
    """
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size, *input_shape], tf.float32)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    x = tf.constant(np.random.RandomState(0).rand(batch_size, *input_shape).astype(np.float32))
    return latency_stats(time_calls(lambda: fn(x).numpy(), warmup, runs))


def tflite_latency(runner, batch_size=1, warmup=50, runs=500):
    """Latency of `runner.invoke()` (runner.Runner) on a fixed input batch, in ms."""
    shape = (batch_size,) + runner.input_shape
    runner.set_input(np.random.RandomState(0).rand(*shape).astype(np.float32))
    return latency_stats(time_calls(runner.invoke, warmup, runs))


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


def keras_row(model, model_path, name, images, labels, num_threads, warmup=50, runs=500):
    """The benchmark row of the float Keras model; also returns its top-1 predictions [N]."""
    logits = model.predict(images, batch_size=256, verbose=0)
    predictions = np.argmax(logits, -1)
    row = {"name": name, "variant": "float", "format": "keras",
           **accuracy_stats(logits, labels, predictions), **file_sizes(model_path),
           **keras_latency(model, images.shape[1:], 1, warmup, runs),
           "num_threads": num_threads, "batch_size": 1, "path": model_path}
    return row, predictions


def tflite_row(path, name, variant, images, labels, reference_predictions, num_threads,
               warmup=50, runs=500):
    """The benchmark row of one .tflite file (accuracy on all of `images`, batch-1 latency)."""
    from tftool.runner import Runner

    runner = Runner(model_path=path, num_threads=num_threads)
    logits = runner(images)
    return {"name": name, "variant": variant, "format": "tflite",
            **accuracy_stats(logits, labels, reference_predictions), **file_sizes(path),
            **tflite_latency(Runner(model_path=path, num_threads=num_threads), 1, warmup, runs),
            "num_threads": num_threads, "batch_size": 1, "path": os.path.abspath(path),
            **sparsity_stats(path)}


def sparsity_stats(path):
    """{"sparsity": zero fraction over all conv/dense kernels of a .tflite (float in [0, 1]),
    "kernel_sparsity": [{"op", "tensor", "sparsity"}] per kernel}, read from the flatbuffer's
    weight tensors (tftool.sparsity)."""
    from tftool import sparsity

    kernels = sparsity.kernel_sparsity(model_path=path)
    return {"sparsity": sparsity.tflite_sparsity(model_path=path),
            "kernel_sparsity": [{"op": k["op"], "tensor": k["tensor"],
                                 "sparsity": k["zeros"] / k["size"]} for k in kernels]}
