"""Data sets through TFDS, tf.data input pipelines, augmentation and calibration data.

Three kinds of `--dataset`:
  digits          the UCI handwritten digits bundled with scikit-learn (tftool/data/digits.py)
  <catalog name>  any TFDS catalog data set with image/label supervised keys (mnist, cifar10, ...);
                  `data_dir` and `manual_dir` are passed to TFDS so prepared data works offline
  folder:PATH     your own images: PATH/<class>/*.jpg (unsplit), or PATH/train/<class>/... with
                  optionally PATH/test/<class>/... and PATH/validation/<class>/... (.png, .jpg,
                  .jpeg in any case; every file is checked up front: data/folder.py)

Every data set has train, validation and test splits: its own validation split where it has
one, else a stratified, seeded share of train (--validation_fraction, split_validation). A
folder without test/ gets a stratified, seeded test split the same way (--test_fraction,
test_indices), drawn before the validation split.

Input size: resolve_image_size (--image_size, else the most common size of the train images,
its longer side capped at MAX_AUTO_SIZE); image_size_source says where it came from.

Every loader returns a `Dataset` of unbatched (uint8 image HxWxC, int64 label) pairs; the
pipeline functions here resize, scale to [0, 1] float32, cache, shuffle, batch and augment.
"""
import collections
import dataclasses
import os
import socket
import time

from tftool import UserError

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras

AUTOTUNE = tf.data.AUTOTUNE
FOLDER_PREFIX = "folder:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")  # compared in lower case: .JPG is read too
IMAGE_EXTENSIONS_TEXT = ".png, .jpg or .jpeg (any case)"
# Data sets whose classes do not change under a left-right mirror; a flip on digits would turn a
# 2 into something that is not a digit, so `--hflip` defaults to these only.
HFLIP_SAFE = ("cifar10", "cifar100", "imagenette", "imagenet2012", "tf_flowers", "cats_vs_dogs",
              "oxford_iiit_pet", "stanford_dogs", "food101", "caltech101")


@dataclasses.dataclass
class Dataset:
    """A loaded data set: unbatched (uint8 HxWxC, int64 label) splits plus what describes them.

    train / validation / test: the validation split *chooses* (selective int8's layers, the
    sparsity ladder, distillation's grid, the model search); the test split only *reports*.
    validation_split says where the validation images come from: {"source": "validation"}
    (the data set's own split) or {"source": "train", "fraction", "seed", "stratified"} (a
    stratified, seeded share of train, removed from train: split_validation).
    test_split says the same of the test images: {"source": "test"} (the data set's own test
    split; "validation" for a TFDS set whose held-out split is named so) or {"source":
    "folder" (PATH/<class>/ alone) or "train" (PATH/train/ without test/), "fraction", "seed",
    "stratified": True, "count"} (a stratified, seeded share drawn by test_indices).
    image_sizes: folder data sets: {split: {(height, width): images}} of the native sizes
    (pixels) of the images of each split; {} for TFDS sets (every image is image_shape).
    """
    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list
    image_shape: tuple  # native (height, width, channels) after the channels choice
    num_train: int
    num_test: int
    hflip_safe: bool
    validation: tf.data.Dataset = None
    num_validation: int = 0
    validation_split: dict = dataclasses.field(default_factory=dict)
    test_split: dict = dataclasses.field(default_factory=lambda: {"source": "test"})
    image_sizes: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.class_names)

    def split(self, name):
        """(unbatched split, number of images) of "train", "validation" or "test".
        Raises ValueError for another name."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; allowed: {', '.join(SPLITS)}")
        return getattr(self, name), getattr(self, f"num_{name}")


SPLITS = ("train", "validation", "test")
# The stratified validation split drawn from train (split_validation) uses this fixed seed, not
# the training --seed: runs with different seeds are then scored on the same validation images.
VALIDATION_SEED = 20261202
DEFAULT_VALIDATION_FRACTION = 0.1
# A folder without test/ gets a stratified test split (test_indices) drawn with this fixed seed,
# for the same reason: every stage (quantize, prune, export, benchmark load the folder again)
# and every training --seed scores on the same test images.
TEST_SEED = 20261203
DEFAULT_TEST_FRACTION = 0.2
# Above this many train images the validation share is the last `fraction` of the train
# records (TFDS split slicing, "train[-k:]"): TFDS shuffles records when it prepares a data set,
# so the slice is a random sample, and a label pass over ImageNet's 1.28 M train records would
# read ~140 GB before every stage. Below it the split is stratified by class.
LARGE_TRAIN = 200_000


def load(dataset, data_dir=None, manual_dir=None, channels=None, download=True,
         skip_corrupt=False, validation_fraction=DEFAULT_VALIDATION_FRACTION,
         test_fraction=DEFAULT_TEST_FRACTION):
    """Loads `dataset` (see module docstring) as a `Dataset` with train/validation/test splits.

    Args:
      dataset: "digits", a TFDS catalog name, or "folder:PATH".
      data_dir: TFDS data directory (None: TFDS's default, ~/tensorflow_datasets).
      manual_dir: directory with manually downloaded archives, for catalog data sets.
      channels: 1 or 3 to force grayscale or RGB; None keeps the data set's own.
      download: whether a catalog data set that is not prepared may be downloaded.
      skip_corrupt: folder data sets: leave out images that cannot be decoded (logged with a
        count) instead of raising.
      validation_fraction: share of train held out as the validation split (stratified by
        class, seeded with VALIDATION_SEED) when the data set has no validation split of its
        own (TFDS "validation" beside "test"; PATH/validation/<class>/), in (0, 0.5].
      test_fraction: share of a folder's images held out as the test split (stratified by
        class, seeded with TEST_SEED) when it has no test/ subfolder, in (0, 0.5]; unused
        for TFDS sets and folders with test/.

    Raises:
      UserError: unknown data set, a folder path given without folder:, missing/empty/
        one-class folder, a class folder without train images or with too few images to
        split, corrupt images in a folder (counted and named), data absent offline, a
        validation_fraction or test_fraction out of (0, 0.5].
    """
    if channels not in (None, 1, 3):
        raise UserError(f"--channels={channels}: use 1 (grayscale) or 3 (RGB)")
    for name, value, example in (("validation_fraction", validation_fraction, 0.1),
                                 ("test_fraction", test_fraction, 0.2)):
        if not 0.0 < value <= 0.5:
            raise UserError(f"--{name}={value}: must be in (0, 0.5], e.g. {example}")
    if dataset.startswith(FOLDER_PREFIX):
        from tftool.data import folder

        return folder.load(dataset[len(FOLDER_PREFIX):], channels, skip_corrupt,
                            validation_fraction, test_fraction)
    if dataset == "digits":
        from tftool.data import digits
        builder = digits.Digits(data_dir=data_dir)
        if not builder.is_prepared():
            _prepare_quietly(builder)
    else:
        builder = _catalog_builder(dataset, data_dir, manual_dir, download)
    return _from_builder(dataset, builder, channels, validation_fraction)


def _prepare_quietly(builder):
    """Prepares a local builder (digits: nothing to download) without TFDS's "Downloading and
    preparing dataset Unknown size" banner and progress bars; one line says where it went."""
    import contextlib
    import io

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        tfds.disable_progress_bar()
        try:
            builder.download_and_prepare()
        finally:
            tfds.enable_progress_bar()
    print(f"prepared the {builder.name} data set in {builder.data_dir} "
          f"({time.perf_counter() - start:.1f} s, once)", flush=True)


def _catalog_builder(name, data_dir, manual_dir, download):
    # Community data sets would be listed from GCS: a network call (and a warning when offline)
    # for names tftool cannot load anyway (they need their own builder code).
    if name not in tfds.list_builders(with_community_datasets=False):
        if os.path.isdir(os.path.expanduser(name)):  # a folder of images, without folder:
            raise UserError(f"--dataset={name}: a folder of images is given as folder:PATH; "
                            f"use --dataset={FOLDER_PREFIX}{name}")
        raise UserError(f"--dataset={name}: unknown data set; use digits, folder:PATH, or a TFDS "
                        f"catalog name such as mnist, fashion_mnist or cifar10")
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    where = builder.data_dir
    if not download:
        raise UserError(f"--dataset={name}: not prepared under {where} and --nodownload was given; "
                        f"run `tfds build {name} --data_dir=...` and pass that --data_dir")
    if manual_dir is None and not _network_reachable():
        # TFDS retries a failed download for minutes; fail at once instead.
        raise UserError(f"--dataset={name}: not prepared under {where} and the network is "
                        f"unreachable; prepare it on a connected machine (`tfds build {name} "
                        f"--data_dir=DIR`) and pass --data_dir=DIR, or pass --manual_dir")
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as e:  # TFDS raises many types (AssertionError for manual data, IOError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--dataset={name}: could not prepare it under {where}: {first}") from e
    return builder


def _network_reachable(host="storage.googleapis.com", port=443, timeout_s=5.0):
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _supervised_keys(builder):
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2:
        raise UserError(f"--dataset={builder.name}: has no (image, label) supervised keys")
    return keys


def _from_builder(name, builder, channels, validation_fraction):
    image_key, label_key = _supervised_keys(builder)
    features = builder.info.features
    image_shape = tuple(features[image_key].shape)
    if len(image_shape) != 3:
        raise UserError(f"--dataset={name}: feature {image_key!r} is not an image (shape "
                        f"{image_shape})")
    splits = builder.info.splits
    test_split = next((s for s in ("test", "validation") if s in splits), None)
    if "train" not in splits or test_split is None:
        raise UserError(f"--dataset={name}: needs a train and a test (or validation) split; "
                        f"has {', '.join(splits)}")
    native_channels = image_shape[-1]

    def raw(split):  # image bytes undecoded: a label pass reads no pixels
        return builder.as_dataset(split, shuffle_files=False,
                                  decoders={image_key: tfds.decode.SkipDecoding()})

    def decoded(ds):
        ds = ds.map(lambda ex: (features[image_key].decode_example(ex[image_key]),
                                ex[label_key]), num_parallel_calls=AUTOTUNE)
        return _set_channels(ds, native_channels, channels)

    num_train = splits["train"].num_examples
    if test_split == "test" and "validation" in splits:
        train, validation = raw("train"), raw("validation")
        num_validation = splits["validation"].num_examples
        info = {"source": "validation"}
    elif num_train > LARGE_TRAIN:
        held = max(1, int(round(validation_fraction * num_train)))
        train, validation = raw(f"train[:-{held}]"), raw(f"train[-{held}:]")
        num_train, num_validation = num_train - held, held
        info = {"source": "train", "fraction": validation_fraction, "stratified": False,
                "slice": f"train[-{held}:]"}
    else:
        labels = _labels(raw("train"), label_key)
        train, validation, info = split_validation(raw("train"), labels, validation_fraction)
        num_train, num_validation = len(labels) - info["count"], info["count"]
    return Dataset(
        name=name,
        train=decoded(train),
        validation=decoded(validation),
        test=decoded(raw(test_split)),
        class_names=list(features[label_key].names),
        image_shape=image_shape[:2] + (channels or native_channels,),
        num_train=num_train,
        num_validation=num_validation,
        num_test=splits[test_split].num_examples,
        hflip_safe=name in HFLIP_SAFE,
        validation_split=info,
        test_split={"source": test_split},
    )


def _labels(ds, label_key):
    """int64 [n]: the labels of an undecoded split, in its order (one pass, no pixels)."""
    batches = ds.map(lambda ex: ex[label_key]).batch(65_536).as_numpy_iterator()
    return np.concatenate(list(batches) or [np.zeros(0, np.int64)])


def validation_indices(labels, fraction, seed=VALIDATION_SEED):
    """Which train images form the validation split: stratified by class and seeded.

    Each class gives round(fraction × its images) of its images (at least one image stays in
    train), drawn at random with `seed`; if that rounds to none in every class, one image of
    the largest class. Same labels, fraction and seed: same indices, on every machine.
    Args:
      labels: int [n] labels of the train split, in its order.
      fraction: share to hold out, in (0, 0.5].
    Returns:
      sorted int64 indices into the train split.
    Raises:
      UserError: a train split of fewer than 2 images.
    """
    labels = np.asarray(labels)
    if len(labels) < 2:
        raise UserError(f"the train split has {len(labels)} image(s); a validation split "
                        f"needs at least 2")
    chosen = _stratified(labels, fraction, seed, at_least=0, keep=1)
    if not len(chosen):
        classes, counts = np.unique(labels, return_counts=True)
        chosen = [np.flatnonzero(labels == classes[np.argmax(counts)])[0]]
    return np.sort(np.asarray(chosen, np.int64))


def _stratified(labels, fraction, seed, at_least, keep):
    """Sorted int64 indices of a seeded draw of round(fraction × n_c) images of each class c
    (n_c its images), at least `at_least` and at most n_c − keep, classes in sorted order."""
    rng = np.random.RandomState(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        chosen.extend(idx[:min(max(at_least, int(round(fraction * len(idx)))),
                               len(idx) - keep)])
    return np.sort(np.asarray(chosen, np.int64))


def test_indices(labels, fraction, seed=TEST_SEED, keep=1):
    """Which images of a folder without test/ form the test split: stratified and seeded.

    Each class gives round(fraction × its images) of its images, at least one (every class is
    tested) and at most all but `keep` (what stays for training and a validation split drawn
    from it), drawn at random with `seed`. Same labels, fraction and seed: same indices, on
    every machine, so every stage that loads the folder again scores on the same test images.
    Args:
      labels: int [n] labels of the images to split, in their (fixed) order.
      fraction: share to hold out, in (0, 0.5].
      keep: images of each class that must stay out of the test split, ≥ 1.
    Returns:
      sorted int64 indices into `labels`.
    Raises:
      ValueError: a class with fewer than keep + 1 images (the folder loader names it first).
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(counts) and counts.min() < keep + 1:
        raise ValueError(f"class {classes[np.argmin(counts)]} has {counts.min()} image(s); a "
                         f"test split needs {keep + 1}")
    return _stratified(labels, fraction, seed, at_least=1, keep=keep)


def split_validation(ds, labels, fraction, seed=VALIDATION_SEED):
    """Splits an unbatched train split into (train, validation, info) by validation_indices.

    Both are `ds` filtered by index (tf.data enumerate + a lookup in an [n] bool mask), in
    their original order; info = {"source": "train", "fraction", "seed", "stratified": True,
    "count": validation images}.
    """
    chosen = validation_indices(labels, fraction, seed)
    total = len(labels)
    in_validation = _drawn(chosen, total)
    validation = ds.enumerate().filter(in_validation).map(lambda i, x: x)
    train = ds.enumerate().filter(lambda i, x: tf.logical_not(in_validation(i, x))).map(
        lambda i, x: x)
    return train, validation, {"source": "train", "fraction": fraction, "seed": seed,
                               "stratified": True, "count": int(len(chosen))}


def _set_channels(ds, native, wanted):
    if wanted is None or wanted == native:
        return ds
    if wanted == 1:
        return ds.map(lambda x, y: (tf.image.rgb_to_grayscale(x), y), num_parallel_calls=AUTOTUNE)
    return ds.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y), num_parallel_calls=AUTOTUNE)


# Without --image_size, a native size whose longer side is larger than this is brought down to
# it keeping the aspect ratio: 224 px is the usual ImageNet input, and a phone photo (3024x4032)
# at full size would need ~240x the compute of 224x168 per image.
MAX_AUTO_SIZE = 224
RESIZE_METHOD = "bilinear, antialiased"  # how to_pixels/preprocess resize an image


def most_common_size(counts):
    """The (height, width) with the most images in `counts` {(height, width): images}; a tie
    goes to the larger size (area, then height): shrinking keeps detail that enlarging
    cannot add. Raises ValueError: empty counts."""
    if not counts:
        raise ValueError("no image sizes to choose from")
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw[0]))


def capped_size(height, width, limit=MAX_AUTO_SIZE):
    """(height, width) with the longer side brought down to `limit` pixels when larger,
    keeping the aspect ratio (the other side rounded half up, at least 1 pixel):
    (3024, 4032) -> (168, 224); (32, 32) -> (32, 32)."""
    longer = max(height, width)
    if longer <= limit:
        return (height, width)
    return tuple(max(1, (side * limit * 2 + longer) // (2 * longer)) for side in (height, width))


def auto_image_size(data):
    """(height, width) in pixels a data set trains at without --image_size: its native size
    (image_shape: a folder's most common train image size, most_common_size), capped at
    MAX_AUTO_SIZE (capped_size).
    Raises: UserError: a TFDS set whose images have no fixed size (pass --image_size)."""
    h, w = data.image_shape[:2]
    if h is None or w is None:
        raise UserError(f"--dataset={data.name}: images have no fixed size; pass --image_size")
    return capped_size(int(h), int(w))


def resolve_image_size(data, image_size):
    """(height, width) in pixels to train at.

    Args:
      image_size: --image_size (int: a square), a size config.json recorded (int, or
        [height, width] for a non-square one: size_setting), or None: auto_image_size.
    Raises: UserError: None for a TFDS set of varying image sizes (auto_image_size).
    """
    if image_size:
        if isinstance(image_size, (list, tuple)):
            return (int(image_size[0]), int(image_size[1]))
        return (int(image_size), int(image_size))
    return auto_image_size(data)


def size_setting(size):
    """What config.json records as image_size for a resolved (height, width): an int for a
    square (as --image_size takes it), else [height, width]."""
    h, w = (int(v) for v in size)
    return h if h == w else [h, w]


def image_size_source(data, size, given=None):
    """Where the input size comes from, in words and figures: the first line of tftool-train
    and the model card.

    Args:
      data: the Dataset; size: the resolved (height, width) in pixels.
      given: whether --image_size chose it; None: whenever it differs from auto_image_size
        (the model card sees only the size config.json recorded).
    Returns:
      {"size": [h, w], "source": "--image_size", "most common train size" or "native",
       "native": [h, w] (a folder's most common train size; None for varying TFDS images),
       "train_images": int, "capped_at": MAX_AUTO_SIZE when the cap changed the size else None,
       "resized": images (all splits) of another size than `size`, resized RESIZE_METHOD
       (None: unknown), "resize": RESIZE_METHOD, "text": a phrase such as "32x32 (the most
       common size of 900 train images; 12 images of other sizes, in all splits, are resized
       bilinear, antialiased)"}.
    """
    size = tuple(int(v) for v in size)
    h, w = data.image_shape[:2]
    native = None if h is None or w is None else (int(h), int(w))
    auto = capped_size(*native) if native else None
    given = size != auto if given is None else bool(given)
    total = data.num_train + data.num_validation + data.num_test
    if data.image_sizes:
        counts = collections.Counter()
        for split_counts in data.image_sizes.values():
            counts.update(split_counts)
        resized = total - counts.get(size, 0)
    else:
        resized = None if native is None else (0 if native == size else total)
    capped = not given and auto != native

    def shown(hw):
        return f"{hw[0]}x{hw[1]}"

    if given:
        source = "--image_size"
        why = ("--image_size" + (f"; the most common train size is {shown(native)}"
                                 if data.image_sizes else
                                 f"; the data set's images are {shown(native)}" if native
                                 else ""))
    elif data.image_sizes:
        source = "most common train size"
        why = f"the most common size of {data.num_train} train images"
    else:
        source = "native"
        why = "the data set's native size"
    if capped:
        why += f", {shown(native)}, with its longer side capped at {MAX_AUTO_SIZE}"
    if resized is None:
        why += f"; the images vary in size and are resized {RESIZE_METHOD}"
    elif resized == 0:
        why += "; no image is resized"
    elif resized == total:
        why += f"; all {total} images are resized {RESIZE_METHOD}"
    else:
        why += (f"; {resized} images of other sizes, in all splits, are resized "
                f"{RESIZE_METHOD}")
    orientation = "height x width; " if size[0] != size[1] else ""
    return {"size": list(size), "source": source, "native": list(native) if native else None,
            "train_images": data.num_train, "capped_at": MAX_AUTO_SIZE if capped else None,
            "resized": resized, "resize": RESIZE_METHOD,
            "text": f"{shown(size)} ({orientation}{why})"}


def test_split_source(data):
    """One phrase saying how a drawn test split was made, e.g. "20% of each class of the
    folder, 36 of 180 images (stratified, fixed seed 20261203; --test_fraction sets the
    share)"; None for a data set's own test split."""
    info = data.test_split
    if info.get("source") not in ("folder", "train"):
        return None
    pool = "the folder" if info["source"] == "folder" else "train/"
    total = data.num_train + data.num_validation + data.num_test
    if info["source"] == "train" and data.validation_split.get("source") == "validation":
        total -= data.num_validation  # validation/ is a folder of its own
    return (f"{info['fraction'] * 100:g}% of each class of {pool}, {info['count']} of {total} "
            f"images (stratified, fixed seed {info['seed']}; --test_fraction sets the share)")


def preprocess(image, image_size):
    """uint8 HxWxC (or NxHxWxC) -> float32 in [0, 1] at `image_size` (height, width)."""
    image = tf.cast(image, tf.float32)
    static = image.shape[-3:-1]
    if static.as_list() != list(image_size):
        image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


# Training-time augmentation policies (--augmentation):
#   geometric:  random translation (±10%), rotation (±18°), zoom (±10%) and contrast (±20%)
#               with black (constant) fill: chosen on the 8x8 digits, where flips are wrong.
#   flip_shift: random translation by up to SHIFT_PIXELS pixels with reflected borders; the
#               photo recipe's (airbench, Jordan 2024; He et al. 2016's CIFAR crops), with
#               --hflip on photos. On the development photos the geometric policy cost the
#               float model 2.8-4.4 points against no augmentation (docs/photo_recipe.md).
AUGMENTATIONS = ("geometric", "flip_shift")
SHIFT_PIXELS = 2


def augmenter(image_size, hflip=False, seed=None, augment=True, augmentation="geometric"):
    """Keras preprocessing layers for training-time augmentation, applied in tf.data only.

    With `augment`, the `augmentation` policy (AUGMENTATIONS above); with `hflip`, a
    horizontal flip (either alone: `--noaugment --hflip` flips only). Input and output:
    float32 NxHxWxC in [0, 1]. These layers never go into an exported model.

    Images under 32 px use nearest-neighbour resampling: bilinear resampling blurs every
    augmented 8x8 digit, so training images stop looking like test images (measured on digits:
    test accuracy 0.955 bilinear vs 0.989 nearest, same seed). flip_shift always uses nearest:
    its shifts are whole pixels, so no image is resampled.
    Raises: ValueError: an augmentation policy not in AUGMENTATIONS.
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation={augmentation!r}; allowed: {', '.join(AUGMENTATIONS)}")
    interpolation = "nearest" if min(image_size) < 32 else "bilinear"
    layers, clip = [], False
    if augment and augmentation == "geometric":
        layers = [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant",
                                           interpolation=interpolation, seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="constant",
                                        interpolation=interpolation, seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant",
                                    interpolation=interpolation, seed=seed),
            keras.layers.RandomContrast(0.2, seed=seed),
        ]
        # RandomContrast stretches about the mean without clipping: back into [0, 1], the
        # range the model sees at test time and int8 calibration assumes (a flip stays in it).
        clip = True
    elif augment and augmentation == "flip_shift":
        h, w = image_size
        layers = [keras.layers.RandomTranslation(SHIFT_PIXELS / h, SHIFT_PIXELS / w,
                                                 fill_mode="reflect", interpolation="nearest",
                                                 seed=seed)]
    if hflip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if clip:
        layers.append(keras.layers.Lambda(lambda t: tf.clip_by_value(t, 0.0, 1.0), name="clip"))
    return keras.Sequential(layers, name="augment")


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


def _drawn(indices, total):
    """A tf.data filter for enumerate()d elements: keeps those whose index is in `indices`
    (a lookup in a [total] bool mask: O(1) per element, 1 byte per image)."""
    mask = np.zeros(total, bool)
    mask[indices] = True
    mask = tf.constant(mask)
    return lambda i, xy: tf.gather(mask, tf.minimum(i, total - 1)) & (i < total)


def representative_dataset(data, image_size, num_samples=100, seed=0):
    """A TFLite `representative_dataset`: a callable that yields [float32 1xHxWxC] lists.

    Samples are `num_samples` train images drawn uniformly without replacement (seeded by
    `seed`), so every class is represented although ImageFolder lists files class by class.
    Memory is bounded by `num_samples` images, not by the split: the split is streamed once
    and only the drawn indices are kept (the shuffle buffer used before held up to 10,000
    decoded images: 768 MB at 160x160x3 uint8).
    Follows https://www.tensorflow.org/lite/performance/post_training_integer_quant.
    """
    total = data.num_train
    count = min(num_samples, total)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    order = np.random.default_rng(seed + 1).permutation(count)  # no class-by-class runs

    def gen():
        picked = data.train.enumerate().filter(_drawn(chosen, total)).map(
            lambda i, xy: preprocess(xy[0], image_size))
        images = [image.numpy() for image in picked]  # count images, each [H, W, C]
        for i in order[:len(images)]:
            yield [images[i][None]]
    return gen


def sample_pixels(data, image_size, count, seed=0):
    """`count` train images drawn uniformly without replacement, as uint8 [count, H, W, C]
    pixels at `image_size` (to_pixels), in a random order (seeded).

    Memory is `count` images, not the split: the split is streamed once and only the drawn
    indices are kept, so no shuffle buffer over a class-by-class ImageFolder listing is
    needed to mix the classes. Raises ValueError: count < 1.
    """
    if count < 1:
        raise ValueError(f"count={count}: must be ≥ 1")
    count = min(count, data.num_train)
    chosen = np.sort(np.random.default_rng(seed).choice(data.num_train, count, replace=False))
    picked = data.train.enumerate().filter(_drawn(chosen, data.num_train))
    # One array filled in place and shuffled in place: a list plus np.stack plus a permuted
    # copy held three copies (740 MB for 3,200 160-px images).
    pixels = np.empty((count, *image_size, data.image_shape[-1]), np.uint8)
    seen = 0
    for _, xy in picked:
        pixels[seen] = to_pixels(xy[0], image_size).numpy()
        seen += 1
    pixels = pixels[:seen]  # fewer when --skip_corrupt dropped a drawn file
    np.random.default_rng(seed + 1).shuffle(pixels)
    return pixels


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
