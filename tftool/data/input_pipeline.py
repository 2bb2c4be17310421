"""tf.data input pipelines and the pixels a model sees: preprocess and to_pixels (resize,
round, scale), pipeline (cache, shuffle, batch, augment), test_batches and test_arrays (a split
as numpy batches for evaluation)."""
import numpy as np
import tensorflow as tf

from tftool.data.augment import augmenter
from tftool.data.dataset import AUTOTUNE


def preprocess(image, image_size):
    """uint8 HxWxC (or NxHxWxC) -> float32 in [0, 1] at `image_size` (height, width)."""
    image = tf.cast(image, tf.float32)
    static = image.shape[-3:-1]
    if static.as_list() != list(image_size):
        image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def pipeline(ds, image_size, global_batch_size, training, augment=False, hflip=False, seed=0,
             num_examples=None, repeat=False, augmentation="geometric"):
    """The input pipeline: cache uint8, (shuffle), batch, scale to float, (augment), prefetch.

    Args:
      ds: unbatched (uint8 HxWxC, label) pairs.
      image_size: (height, width) of the model input.
      global_batch_size: per-replica batch x replicas; a distribution strategy splits it.
      training: shuffle (seeded, reshuffled every epoch), drop the last partial batch, augment
        (`augmentation`: a policy of augmenter).
      repeat: with training, repeat the shuffled split forever (a new order each pass), so
        one iterator serves every epoch of a fit with steps_per_epoch. Measured
        (MobileNetV2 α 0.35 at 96 px, 7,190 images, 2 cores): with one iterator per epoch
        half the epochs stalled ~6 s with no thread busy (20 s vs 13-15 s); with one
        iterator none did, and epochs matched plain model.fit on numpy (median 14.5 vs 14.9 s).
    Returns:
      tf.data.Dataset of (float32 [N, H, W, C] in [0, 1], int64 [N]).

    The model sees the pixels an app feeds and evaluation scores (to_pixels: resized to
    image_size and rounded to uint8), scaled by 1/255. Throughput: per-image tf.data maps cost
    ~20-50 µs each on a busy CPU, so the work is done per batch where it can be: images of
    one static size are cached as decoded uint8, batched, then resized and scaled as one
    [N, H, W, C] tensor; images of varying size (folders) are resized one by one once, before
    the cache, and only the scaling runs per batch.

    Sharding: under MultiWorkerMirroredStrategy every worker builds this same pipeline (same
    seed, so the same shuffled order) and Keras shards it by DATA: worker i keeps its slice
    of each global batch. The policy is set explicitly because the default (AUTO -> FILE)
    would shard by input file, and TFDS digits has a single file per split (TF multi-worker
    guide, "Dataset sharding"). Outside multi-worker training the option has no effect.
    """
    static = ds.element_spec[0].shape[:2].is_fully_defined()
    if not static:  # varying sizes cannot be batched before resizing
        ds = ds.map(lambda x, y: (to_pixels(x, image_size), y), num_parallel_calls=AUTOTUNE)
    ds = ds.cache()  # uint8: the smallest form, decoded (and resized) once
    if training:
        buffer = min(num_examples or 10_000, 50_000)
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
    ds = ds.batch(global_batch_size, drop_remainder=training)

    def scale(x, y):
        x = to_pixels(x, image_size) if static else x
        return tf.cast(x, tf.float32) / 255.0, y

    ds = ds.map(scale, num_parallel_calls=AUTOTUNE)
    if training and (augment or hflip):  # --noaugment --hflip: flips alone
        aug = augmenter(image_size, hflip=hflip, seed=seed, augment=augment,
                        augmentation=augmentation)
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(AUTOTUNE).with_options(options)


def to_pixels(image, image_size):
    """uint8 HxWxC (or NxHxWxC) -> uint8 at `image_size` (height, width): what an app feeds.

    Resized (bilinear, antialiased, as `preprocess`) only when the size differs, then rounded
    back to 0..255, so a model sees the same pixels whether the benchmark or an app feeds it.
    """
    static = image.shape[-3:-1]
    if static.as_list() == list(image_size):
        return tf.cast(image, tf.uint8)
    resized = tf.image.resize(tf.cast(image, tf.float32), image_size, method="bilinear",
                              antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def test_batches(data, image_size, batch_size=64, split="test"):
    """The test split (or `split`: "validation", "train") as a stream of (uint8 pixels
    [n, H, W, C], int64 labels [n]) numpy batches, in a fixed order; one batch is decoded at a
    time (evaluate.py).

    Batch 64 by default: export and benchmark score every model on each batch, and the Keras
    float model's activations grow with the batch (at 160x160x3, 256 images took ~330 MB more
    peak RSS than 100: benchmarks/peak_memory.py); memory stays flat in the split size."""
    ds = data.split(split)[0].map(lambda x, y: (to_pixels(x, image_size), y),
                                  num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(2).as_numpy_iterator()


def test_arrays(data, image_size, batch_size=256):
    """The whole test split in memory: (float32 [N, H, W, C] in [0, 1], int64 [N]).

    For small data sets and tests only; evaluation streams (test_batches) instead.
    """
    images, labels = [], []
    for x, y in test_batches(data, image_size, batch_size):
        images.append(x.astype(np.float32) / 255.0)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)
