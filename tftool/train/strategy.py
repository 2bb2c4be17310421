"""The distribution strategy, built once from flags and passed to everything that makes variables.

  auto        MirroredStrategy over the GPUs (all, or --num_gpus); with --cpu_replicas=N > 1,
              MirroredStrategy over N logical CPU devices; otherwise the default strategy.
  mirrored    MirroredStrategy, as auto but always Mirrored (one replica when nothing else).
  one_device  OneDeviceStrategy on the first GPU, else the CPU.
  multi_worker  MultiWorkerMirroredStrategy over every worker named in the TF_CONFIG
              environment variable (all local GPUs of each worker, else its CPU).

The global batch is per_replica_batch_size × strategy.num_replicas_in_sync (over all workers).
See https://www.tensorflow.org/guide/distributed_training and, for multi_worker,
https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras.
"""
import json
import os
import re

from tftool import UserError, internals

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "one_device", "multi_worker")


def configure_cpu_replicas(n):
    """Splits the physical CPU into `n` logical devices (for MirroredStrategy on CPU).

    Must run before TensorFlow initializes its devices (before the first op).
    Raises:
      UserError: n < 1, or TensorFlow already initialized with another split.
    """
    if n < 1:
        raise UserError(f"--cpu_replicas={n}: must be ≥ 1")
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0]) or [None]
    if n <= len(current):  # enough logical CPUs already; build() takes the first n
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:
        raise UserError(f"--cpu_replicas={n}: TensorFlow was already initialized with "
                        f"{len(tf.config.list_logical_devices('CPU'))} CPU devices") from e


def build(name="auto", num_gpus=None, cpu_replicas=1):
    """Returns a tf.distribute.Strategy.

    Args:
      name: one of STRATEGIES.
      num_gpus: use the first num_gpus GPUs (None: all).
      cpu_replicas: on a machine without GPUs, replicas over logical CPU devices.
    Raises:
      ValueError: unknown name. UserError: more GPUs asked for than present; multi_worker
        without a usable TF_CONFIG, or with --cpu_replicas/--num_gpus.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        if cpu_replicas > 1 or num_gpus is not None:
            raise UserError("--strategy=multi_worker uses every local GPU (else the CPU) of each "
                            "worker; drop --cpu_replicas/--num_gpus (use CUDA_VISIBLE_DEVICES)")
        return multi_worker()
    configure_cpu_replicas(cpu_replicas)
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise UserError(f"--num_gpus={num_gpus}: this machine has {len(gpus)} GPU(s)")
        gpus = gpus[:num_gpus]
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if gpus:
        devices = [g.name for g in gpus]
        return tf.distribute.MirroredStrategy(devices=devices)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if cpu_replicas > 1:
        # NCCL is GPU-only; reduce through one device on CPU.
        return tf.distribute.MirroredStrategy(
            devices=cpus[:cpu_replicas],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=cpus[:1])
    return tf.distribute.get_strategy()


def tf_config():
    """The parsed TF_CONFIG environment variable: {"cluster": {...}, "task": {...}}.

    Checked as MultiWorkerMirroredStrategy needs it
    (https://www.tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable):
    "cluster" maps job names ("chief", "worker", ...) to lists of "host:port" strings;
    "task" names this process's job ("type") and its integer "index" in that list.
    Raises:
      UserError: TF_CONFIG is unset, not JSON, or any part of it is missing or malformed
        (one line naming the part and the fix).
    """
    raw = os.environ.get("TF_CONFIG")
    hint = "see recipes/multi_worker.sh for the TF_CONFIG of each host"
    if not raw:
        raise UserError(f"--strategy=multi_worker needs the TF_CONFIG environment variable; {hint}")
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e}); {hint}") from e
    if not isinstance(config, dict):
        raise UserError(f"TF_CONFIG must be a JSON object with \"cluster\" and \"task\"; {hint}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError(f"TF_CONFIG needs \"cluster\": {{job name: [\"host:port\", ...]}}; {hint}")
    for job, members in cluster.items():
        if (not isinstance(members, list) or not members
                or not all(isinstance(m, str) and re.fullmatch(r"[^\s:]+:\d{1,5}", m)
                           for m in members)):
            raise UserError(f"TF_CONFIG cluster job {job!r} must be a non-empty list of "
                            f"\"host:port\" strings, not {json.dumps(members)}; {hint}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UserError(f"TF_CONFIG needs \"task\": {{\"type\": job name, \"index\": integer}}; "
                        f"{hint}")
    index = task["index"]
    if isinstance(index, bool) or not isinstance(index, int):
        raise UserError(f"TF_CONFIG task index {json.dumps(index)} is not an integer; {hint}")
    members = cluster.get(task["type"])
    if members is None or not 0 <= index < len(members):
        raise UserError(f"TF_CONFIG task {json.dumps(task)} is not in its cluster "
                        f"{json.dumps(cluster)}; {hint}")
    return config


def multi_worker():
    """MultiWorkerMirroredStrategy from TF_CONFIG (synchronous all-reduce across workers).

    Every worker runs the same command; TF_CONFIG tells each its place in the cluster. It must
    be built before any other TensorFlow op, and every worker blocks here until all have
    joined. Collective implementation AUTO: NCCL between GPUs, ring (gRPC) on CPU.
    Raises:
      UserError: see tf_config().
    """
    tf_config()
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_multi_worker(strategy):
    return internals.in_multi_worker_mode(strategy)


def is_chief(strategy):
    """Whether this process writes the stage's files (always, outside multi-worker training).

    In multi-worker training the chief is task "chief" or, without one, worker 0; the other
    workers compute the same things but write them to a temporary directory (TF guide).
    """
    return not is_multi_worker(strategy) or strategy.extended.should_checkpoint


def describe(strategy):
    """One log line: strategy class, workers, replicas in sync, and this worker's task."""
    name = type(strategy).__name__
    replicas = strategy.num_replicas_in_sync
    if not is_multi_worker(strategy):
        return f"{name}: {replicas} replica(s) in sync"
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
    role = "chief" if is_chief(strategy) else "non-chief"
    return (f"{name}: task {resolver.task_type}:{resolver.task_id} ({role}) of {workers} "
            f"workers, {replicas} replicas in sync")
