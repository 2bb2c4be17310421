"""Where a `--dataset` comes from: load() returns its `Dataset` from the digits builder, a
TFDS catalog data set (prepared, downloaded, or a fast error offline) or folder:PATH
(folder.py); the validation split is the set's own, a slice of train, or drawn (splits.py).
"""
import os
import socket
import time

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tftool import UserError
from tftool.data.dataset import AUTOTUNE, Dataset
from tftool.data.splits import (DEFAULT_TEST_FRACTION, DEFAULT_VALIDATION_FRACTION,
                                split_validation)

FOLDER_PREFIX = "folder:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")  # compared in lower case: .JPG is read too
IMAGE_EXTENSIONS_TEXT = ".png, .jpg or .jpeg (any case)"
# Data sets whose classes do not change under a left-right mirror; a flip on digits would turn a
# 2 into something that is not a digit, so `--hflip` defaults to these only.
HFLIP_SAFE = ("cifar10", "cifar100", "imagenette", "imagenet2012", "tf_flowers", "cats_vs_dogs",
              "oxford_iiit_pet", "stanford_dogs", "food101", "caltech101")
# Above this many train images the validation share is the last `fraction` of the train
# records (TFDS split slicing, "train[-k:]"): TFDS shuffles records when it prepares a data set,
# so the slice is a random sample, and a label pass over ImageNet's 1.28 M train records would
# read ~140 GB before every stage. Below it the split is stratified by class.
LARGE_TRAIN = 200_000


def load(dataset, data_dir=None, manual_dir=None, channels=None, download=True,
         skip_corrupt=False, validation_fraction=DEFAULT_VALIDATION_FRACTION,
         test_fraction=DEFAULT_TEST_FRACTION):
    """Loads `dataset` (see the package docstring) as a `Dataset` with train/validation/test splits.

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


def _set_channels(ds, native, wanted):
    if wanted is None or wanted == native:
        return ds
    if wanted == 1:
        return ds.map(lambda x, y: (tf.image.rgb_to_grayscale(x), y), num_parallel_calls=AUTOTUNE)
    return ds.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y), num_parallel_calls=AUTOTUNE)
