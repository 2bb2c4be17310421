"""The distribution strategy, built once from flags and passed to everything that makes variables.

  auto        MirroredStrategy over the GPUs (all, or --num_gpus); with --cpu_replicas=N > 1,
              MirroredStrategy over N logical CPU devices; otherwise the default strategy.
  mirrored    MirroredStrategy, as auto but always Mirrored (one replica when nothing else).
  one_device  OneDeviceStrategy on the first GPU, else the CPU.

The global batch is per_replica_batch_size × strategy.num_replicas_in_sync.
See https://www.tensorflow.org/guide/distributed_training.
"""
import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import UserError

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "one_device")


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
      ValueError: unknown name. UserError: more GPUs asked for than present.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
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
