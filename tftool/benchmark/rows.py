"""Benchmark rows: one dict per model × threads × batch × XNNPACK setting, with accuracy,
agreement with the float model, file sizes, sparsity and latency (benchmark/timing.py).
"""
import gzip
import os

import numpy as np

from tftool.benchmark.timing import tflite_latency

ROW_KEYS = ("name", "variant", "format", "accuracy", "agreement", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "latency_ms_p90", "num_threads", "batch_size")

# Timing defaults: TFLite benchmark_model's own.
def file_sizes(path):
    """{"size_bytes": raw size, "gzip_bytes": size after gzip -9} of a file, in bytes."""
    with open(path, "rb") as f:
        content = f.read()
    return {"size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9))}


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
    """One benchmark row: ROW_KEYS first (in that order), then the other figures.

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


def softmax(logits):
    """float [N, K] logits -> float32 [N, K] probabilities (softmax over the last axis)."""
    z = np.asarray(logits, np.float32)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def tflite_rows(path, name, variant, images, labels, reference_logits, class_names,
                threads=(1,), batch_sizes=(1,), xnnpack=(True, False), timing=None):
    """Benchmark rows of one .tflite file: one per (xnnpack, num_threads, batch_size).

    Accuracy is measured once per XNNPACK setting on the whole test split (images: float32
    [N, H, W, C] in [0, 1], fed as uint8 pixels (litert.to_pixels) as an app feeds them; the
    reference kernels may round int8 differently), with the
    largest thread count; latency on a fixed random batch per row. Rows carry
    "xnnpack" (bool), "path", "sparsity" and "kernel_sparsity" (sparsity_stats).
    """
    from tftool.litert import Runner, to_pixels

    timing = timing or {}
    sizes = file_sizes(path)
    rows = []
    weights = None
    for use_xnnpack in xnnpack:
        runner = Runner(model_path=path, num_threads=max(threads), use_xnnpack=use_xnnpack)
        weights = weights or sparsity_stats(path)  # after Runner has vetted the file
        # A probabilities model is compared with the float model's probabilities, so
        # mean_abs_dlogit is then in probability units.
        reference = softmax(reference_logits) if runner.outputs_probabilities else reference_logits
        accuracy = accuracy_row(runner(to_pixels(images)), labels, reference, class_names)
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
    from tftool.benchmark import measure

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
    from tftool.benchmark import sparsity

    kernels = sparsity.kernel_sparsity(model_path=path)
    return {"sparsity": sparsity.tflite_sparsity(kernels=kernels),
            "kernel_sparsity": [{"op": k["op"], "tensor": k["tensor"],
                                 "sparsity": k["zeros"] / k["size"]} for k in kernels]}
