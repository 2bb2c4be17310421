"""Benchmark rows: one dict per model × threads × batch × XNNPACK setting, with accuracy,
agreement with the float model, file sizes, sparsity and latency (benchmark/timing.py).
"""
import gzip
import os

from tftool.benchmark.timing import tflite_latency

ROW_KEYS = ("name", "variant", "format", "accuracy", "agreement", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "latency_ms_p90", "num_threads", "batch_size")

# Timing defaults: TFLite benchmark_model's own.
def file_sizes(path):
    """{"size_bytes": raw size, "gzip_bytes": size after gzip -9} of a file, in bytes."""
    with open(path, "rb") as f:
        content = f.read()
    return {"size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9))}


def row(name, variant, fmt, accuracy, sizes, latency, num_threads, batch_size, **extra):
    """One benchmark row: ROW_KEYS first (in that order), then the other figures.

    Args:
      accuracy: evaluate.evaluate's dict of this model; sizes: file_sizes' dict; latency:
        latency_stats' dict.
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
    from tftool import evaluate

    result.update({k: v for k, v in evaluate.json_safe(accuracy).items() if k not in result})
    return result


def tflite_rows(path, name, variant, accuracy, threads=(1,), batch_sizes=(1,),
                xnnpack=(True, False), timing=None):
    """Benchmark rows of one .tflite file: one per (xnnpack, num_threads, batch_size).

    Args:
      accuracy: {xnnpack setting (bool): evaluate.evaluate's dict} measured on the whole test
        split (the reference kernels may round int8 differently from XNNPACK's).
    Latency on a fixed random batch per row. Rows carry "xnnpack" (bool), "path", "sparsity"
    and "kernel_sparsity" (sparsity_stats).
    Raises: UserError: not a valid .tflite file.
    """
    from tftool.litert import Runner

    timing = timing or {}
    sizes = file_sizes(path)
    weights = sparsity_stats(path)  # vets the file (litert.Runner's check) first
    rows = []
    for use_xnnpack in xnnpack:
        for num_threads in threads:
            runner = Runner(model_path=path, num_threads=num_threads, use_xnnpack=use_xnnpack)
            weights["input_dtype"] = runner.input_dtype.__name__
            weights["runtime"] = "litert"
            for batch_size in batch_sizes:
                latency = tflite_latency(runner, batch_size, **timing)
                rows.append(row(name, variant, "tflite", accuracy[use_xnnpack], sizes, latency,
                                num_threads, batch_size, xnnpack=use_xnnpack,
                                path=os.path.abspath(path), **weights))
    return rows


def onnx_rows(path, name, variant, accuracy, threads=(1,), batch_sizes=(1,), timing=None):
    """Benchmark rows of one .onnx file in ONNX Runtime (CPU execution provider): one per
    (num_threads, batch_size), timed with the same loop as the .tflite rows
    (onnx_runtime.onnx_latency: intra_op_num_threads = num_threads). Rows carry
    "format": "onnx", "xnnpack": None and "runtime": "onnxruntime"."""
    from tftool import onnx_runtime

    timing = timing or {}
    sizes = file_sizes(path)
    rows = []
    for num_threads in threads:
        runner = onnx_runtime.Runner(model_path=path, num_threads=num_threads)
        for batch_size in batch_sizes:
            latency = onnx_runtime.onnx_latency(runner, batch_size, **timing)
            rows.append(row(name, variant, "onnx", accuracy, sizes, latency, num_threads,
                            batch_size, xnnpack=None, runtime="onnxruntime",
                            path=os.path.abspath(path), input_dtype="float32"))
    return rows


def keras_rows(model_path, name, accuracy, input_shape, threads=(1,), batch_sizes=(1,),
               timing=None):
    """Benchmark rows of the float Keras model: one per (num_threads, batch_size).

    Args:
      accuracy: evaluate.evaluate's dict of the model (agreement 1 by definition).
      input_shape: (H, W, C).
    Latency is measured by benchmark/measure.py in a fresh process per thread count (TF's
    thread pools are fixed at its first op), GPUs hidden, so it runs on the same CPU threads
    as TFLite. Rows carry "xnnpack": None.
    """
    from tftool.benchmark import measure

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
    """What the kernels stored in a .tflite show, read from the flatbuffer (benchmark/
    sparsity.py): {"sparsity": zero fraction over all conv/dense kernels (float in [0, 1]),
    "kernel_sparsity": [{"op", "tensor", "sparsity"}] per kernel, "unique_per_channel_max":
    the most distinct values any output channel of a kernel holds (≤ the number of clusters
    for clustered models), "m_by_n": over the pruned kernels (at least half zeros) the 2:4
    pattern can apply to, True when every one holds it, False when one does not, None when
    there is none (a dense model; the layers pruning skips are dense by design)}."""
    from tftool.benchmark import sparsity

    kernels = sparsity.kernel_sparsity(model_path=path)
    patterns = sparsity.kernel_patterns(model_path=path)
    zeros = {k["tensor"]: k["zeros"] / k["size"] for k in kernels}
    checked = [p["m_by_n"] for p in patterns
               if p["m_by_n"] is not None and zeros.get(p["tensor"], 0) >= 0.5]
    return {"sparsity": sparsity.tflite_sparsity(kernels=kernels),
            "kernel_sparsity": [{"op": k["op"], "tensor": k["tensor"],
                                 "sparsity": k["zeros"] / k["size"]} for k in kernels],
            "unique_per_channel_max": max((p["unique_per_channel"] for p in patterns),
                                          default=None),
            "kernel_patterns": [{k: p[k] for k in ("op", "tensor", "unique",
                                                   "unique_per_channel", "m_by_n")}
                                for p in patterns],
            "m_by_n": all(checked) if checked else None}
