"""Measurements that need a fresh process: `python -m tftool.benchmark.measure` reads a JSON task on stdin.

Why a process per measurement:
  keras_latency  TensorFlow fixes its intra-/inter-op thread pools at its first op, so a Keras
                 thread sweep needs one process per thread count (tf.config.threading docs).
  memory         peak resident memory (RSS) of a process that imports the runtime, loads the
                 model and runs it once: what an app pays, without the benchmark's own data.
GPUs are hidden from the child (CUDA_VISIBLE_DEVICES=-1): the Keras model is timed on the
same CPU threads as the TFLite interpreter.

Internal: benchmark/rows.py calls `in_subprocess(task)`; the child prints one line
`TFTOOL_RESULT <json>` on stdout.
"""
import json
import os
import subprocess
import sys

MARKER = "TFTOOL_RESULT "


def in_subprocess(task, timeout=3600):
    """Runs `task` (a JSON-able dict with "task": "keras_latency" | "memory") in a fresh Python.

    Returns: the task's result (see keras_latency_task, memory_task).
    Raises: RuntimeError with the child's last stderr lines when it fails.
    """
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "tftool.benchmark.measure"], input=json.dumps(task),
                          capture_output=True, text=True, env=env, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    raise RuntimeError(f"measurement {task['task']} failed (exit {proc.returncode}):\n{tail}")


def keras_latency_task(model_path, input_shape, num_threads, batch_sizes, timing):
    """In this (fresh) process: TF threads = num_threads, then timing.keras_latency per batch.

    Returns: [latency_stats dict] in the order of `batch_sizes`.
    """
    from tftool import fileio
    from tftool.benchmark import timing as timing_lib

    timing_lib.set_tf_threads(num_threads)  # before TensorFlow's first op
    model = fileio.load_model(model_path)
    return [timing_lib.keras_latency(model, tuple(input_shape), b, **timing) for b in batch_sizes]


def _rss_bytes():
    """Current resident set size of this process, bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _peak_rss_bytes():
    """Peak resident set size of this process since it was exec'ed, bytes.

    Linux: VmHWM of /proc/self/status, the high-water mark of this process's own memory.
    Not getrusage's ru_maxrss: Linux carries it across fork and exec, so a child started by a
    3 GB parent (tftool-benchmark with TensorFlow and the data set loaded, or pytest) reported
    3 GB for a LiteRT process of tens of MB. Elsewhere ru_maxrss (macOS: bytes).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def memory_task(path, fmt, num_threads):
    """In this (fresh) process: import the runtime, load `path`, run one batch-1 inference.

    Args: fmt "keras" (TensorFlow + tf_keras, .h5) or "tflite" (ai_edge_litert only).
    Returns: {"peak_rss_bytes": peak RSS of the whole process, "runtime_rss_bytes": RSS after
      importing the runtime, before loading the model} in bytes.
    """
    from tftool.benchmark import timing

    if fmt == "keras":
        from tftool import fileio
        import tensorflow as tf  # noqa: F401

        timing.set_tf_threads(num_threads)
        runtime = _rss_bytes()
        model = fileio.load_model(path)
        model(timing.fixed_input(1, tuple(model.input_shape[1:])), training=False).numpy()
    elif fmt == "tflite":
        from tftool.litert import Runner, to_pixels

        runtime = _rss_bytes()
        runner = Runner(model_path=path, num_threads=num_threads)
        runner(to_pixels(timing.fixed_input(1, runner.input_shape)))
    else:
        raise ValueError(f"unknown format {fmt!r}; allowed: keras, tflite")
    return {"peak_rss_bytes": _peak_rss_bytes(), "runtime_rss_bytes": runtime}


TASKS = {"keras_latency": keras_latency_task, "memory": memory_task}


def main():
    task = json.loads(sys.stdin.read())
    result = TASKS[task.pop("task")](**task)
    print(MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
