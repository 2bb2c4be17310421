"""`--dataset=folder:PATH`: your own images as a data.Dataset.

PATH/<class>/*.jpg (unsplit: the test and validation splits are drawn), or PATH/train/<class>/
with optionally PATH/test/<class>/ and PATH/validation/<class>/. Every image is decoded once
up front (a corrupt file is named before training, not in epoch 7) and its size counted (the
input size rule: data.auto_image_size). The splits drawn are stratified and seeded
(data.test_indices, data.validation_indices), so every stage that loads the folder again gets
the same images.
"""
import collections
import os
import random
import time

import numpy as np
import tensorflow as tf
from absl import logging

from tftool import UserError
from tftool.data.dataset import AUTOTUNE, SPLITS, Dataset
from tftool.data.sizes import most_common_size
from tftool.data.sources import FOLDER_PREFIX, IMAGE_EXTENSIONS, IMAGE_EXTENSIONS_TEXT
from tftool.data.splits import (DEFAULT_TEST_FRACTION, DEFAULT_VALIDATION_FRACTION, TEST_SEED,
                                VALIDATION_SEED, test_indices, validation_indices)


def _list_images(class_dir):
    """The sorted image file names in `class_dir`; hidden files (macOS's ._IMG_0001.jpg
    resource forks) left out, as hidden folders are."""
    return sorted(f for f in os.listdir(class_dir)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def _class_folders(directory):
    """The sorted sub-folders of `directory`, hidden ones (.thumbnails, .ipynb_checkpoints)
    left out."""
    return sorted(f for f in os.listdir(directory)
                  if not f.startswith(".") and os.path.isdir(os.path.join(directory, f)))


def _inspect(path):
    """(size, reason) of the image at `path`: its (height, width) in pixels and None when PIL
    decodes it fully, else None and the reason (one short string). The size comes with the
    decode the corruption check needs anyway, so reading every size costs nothing more."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: catches truncated files, not just bad headers
            width, height = image.size
        return (height, width), None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, text.replace(f" '{path}'", "").replace(f" {path}", "")  # named by caller


def _stray_files(directory):
    """Why `directory` (a split folder, or an unsplit folder) has no class folders of images,
    when its contents say: images lying in it directly, or only files of another kind
    (.heic, .webp, ...) in it and its sub-folders. "" when neither."""
    loose, other = 0, collections.Counter()
    for name in os.listdir(directory):
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path):
            loose += 1
            continue
        inner = ([f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f))]
                 if os.path.isdir(path) else [name])
        for f in inner:
            if not f.startswith(".") and not f.lower().endswith(IMAGE_EXTENSIONS):
                other[os.path.splitext(f)[1].lower() or "extension-less"] += 1
    if loose:
        return f" ({loose} image(s) lie directly in it: put each class's images in a folder " \
               f"of their own)"
    if other:
        kind, n = other.most_common(1)[0]
        return f" (it holds {n} {kind} file(s), which are not read: convert them to .jpg)"
    return ""


def _folder_splits(root, where):
    """{split: folder} of a folder data set: train/ and whichever of validation/ and test/ lie
    beside it, or {"train": root} for an unsplit folder of class folders.
    Raises: UserError: test/ or validation/ without train/."""
    names = _class_folders(root)
    if "train" in names:
        return {split: os.path.join(root, split) for split in SPLITS if split in names}
    present = [split for split in ("test", "validation") if split in names]
    if present:
        raise UserError(f"{where}: missing train/ subfolder beside {present[0]}/; expected "
                        f"train/<class>/*.jpg, or every class folder directly in the folder "
                        f"(PATH/<class>/*.jpg) to have the splits drawn")
    return {"train": root}


def _corrupt_message(where, root, bad, named=3):
    """The one-line error for unreadable images `bad` [(path, reason)]: the file and why for
    one; the count and the first `named` files (relative to `root`) for several."""
    if len(bad) == 1:
        path, reason = bad[0]
        return (f"{where}: cannot decode {path} ({reason}); replace or delete it, or pass "
                f"--skip_corrupt to skip unreadable images")
    first = ", ".join(f"{os.path.relpath(p, root)} ({reason})" for p, reason in bad[:named])
    more = f" and {len(bad) - named} more" if len(bad) > named else ""
    return (f"{where}: {len(bad)} images cannot be decoded: {first}{more}; replace or delete "
            f"them, or pass --skip_corrupt to skip unreadable images")


# Train images a folder class needs when the validation split is drawn from train.
MIN_IMAGES_PER_CLASS = 2


def load(path, channels, skip_corrupt=False,
                 validation_fraction=DEFAULT_VALIDATION_FRACTION,
                 test_fraction=DEFAULT_TEST_FRACTION):
    """A folder of images as a Dataset: PATH/<class>/* (unsplit), or PATH/train/<class>/* with
    optionally PATH/test/<class>/* and PATH/validation/<class>/* (IMAGE_EXTENSIONS in any
    case; hidden folders are skipped). The classes are the sorted class folder names.

    Every image is decoded once with PIL before training, so a corrupt or truncated file stops
    the run at once with its name, not with a TensorFlow traceback in the middle of epoch 7
    (about 0.2 ms per small PNG); the same pass reads every image's size (image_sizes). With
    `skip_corrupt` such files are left out and counted.
    Splits: without test/, a stratified `test_fraction` of the train images (of every image
    of an unsplit folder) is the test split (test_indices, TEST_SEED); then, without
    validation/, a stratified `validation_fraction` of the rest is the validation split
    (validation_indices, VALIDATION_SEED). Each split's files are listed by class and name,
    then shuffled with a seed per split name (tfds.ImageFolder's order, which this loader used
    before), so every load of the same folder, in every stage, gives the same splits.
    Raises:
      UserError: missing folder, test/ or validation/ without train/, no class folders with
        images, unreadable images (without skip_corrupt: the count and the first names),
        fewer than 2 classes, a class with too few images for the splits drawn from it (2
        with test/ and without validation/, or with validation/ and without test/; 3 without
        both), a test or validation class
        absent from train, a class folder with no readable train image.
    """
    where = f"--dataset={FOLDER_PREFIX}{path}"
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise UserError(f"{where}: no such directory; give a folder of class folders of "
                        f"{IMAGE_EXTENSIONS_TEXT} images, PATH/<class>/*.jpg (or "
                        f"PATH/train/<class>/ and PATH/test/<class>/)")
    split_dirs = _folder_splits(root, where)
    unsplit = split_dirs["train"] == root
    shown = {split: "" if unsplit else f"{split}/" for split in split_dirs}  # in messages
    holder = {split: "the folder" if unsplit else f"{split}/" for split in split_dirs}
    listed = {}  # split -> {class: [paths]}: every image file, unreadable ones included
    for split, split_dir in split_dirs.items():
        listed[split] = {c: [os.path.join(split_dir, c, f)
                             for f in _list_images(os.path.join(split_dir, c))]
                         for c in _class_folders(split_dir)}
        if not any(listed[split].values()):
            expected = (f"{split}/<class>/*.jpg" if not unsplit else
                        "PATH/<class>/*.jpg, or PATH/train/<class>/ and PATH/test/<class>/")
            raise UserError(f"{where}: {holder[split]} has no class folders with "
                            f"{IMAGE_EXTENSIONS_TEXT} images{_stray_files(split_dir)}; "
                            f"expected {expected}")
    start, bad, sizes = time.perf_counter(), [], {}
    for classes in listed.values():
        for fs in classes.values():
            for f in fs:
                sizes[f], reason = _inspect(f)
                if reason is not None:
                    bad.append((f, reason))
    logging.info("checked the images of %s in %.1f s", root, time.perf_counter() - start)
    if bad and not skip_corrupt:
        raise UserError(_corrupt_message(where, root, bad))
    if bad:
        logging.warning("--skip_corrupt: skipped %d unreadable image(s) in %s (first: %s)",
                        len(bad), root, bad[0][0])
    unreadable = {f for f, _ in bad}
    files = {split: {c: [f for f in fs if f not in unreadable] for c, fs in classes.items()}
             for split, classes in listed.items()}
    files = {split: {c: fs for c, fs in classes.items() if fs} for split, classes in files.items()}
    if len(files["train"]) < 2:
        raise UserError(f"{where}: {holder['train']} has {len(files['train'])} "
                        f"class folder with images; a classifier needs at least 2")
    draw_test, draw_validation = "test" not in files, "validation" not in files
    keep = MIN_IMAGES_PER_CLASS if draw_validation else 1  # train images a class keeps
    need = keep + draw_test
    few = sorted(c for c, fs in files["train"].items() if len(fs) < need)
    if few:  # with too few images a class is never tested, validated or trained
        drawn = ("test and validation splits are" if draw_test and draw_validation else
                 "test split is" if draw_test else "validation split is")
        fix = " or remove the class" if draw_test else ", remove the class, or give a " \
                                                      "validation/ folder"
        raise UserError(f"{where}: {shown['train']}{few[0]}/ has "
                        f"{len(files['train'][few[0]])} image(s) ({len(few)} class(es) with "
                        f"fewer than {need}); the {drawn} drawn from each class's "
                        f"{'' if unsplit else 'train '}images, so add images to "
                        f"{shown['train']}{few[0]}/{fix}")
    for split in list(split_dirs)[1:]:
        missing = sorted(set(files[split]) - set(files["train"]))
        if missing:
            raise UserError(f"{where}: {split}/ has classes with no train images "
                            f"({', '.join(missing)}); add train/{missing[0]}/ or remove "
                            f"{split}/{missing[0]}/")
    empty = sorted(set().union(*listed.values()) - set(files["train"]))
    if empty:  # a class folder with no (readable) train image would be a logit never trained
        raise UserError(f"{where}: class folder(s) {', '.join(empty)} have no readable train "
                        f"images; add images to {shown['train']}{empty[0]}/ or remove the "
                        f"folder")
    class_names = sorted(files["train"])
    index = {c: i for i, c in enumerate(class_names)}
    first_file = files["train"][class_names[0]][0]
    first = tf.io.decode_image(tf.io.read_file(first_file), expand_animations=False)
    native_channels = 1 if first.shape[-1] in (1, 2) else 3
    channels = channels or native_channels

    def ordered(split):
        """[(path, class)] of a split folder in its fixed order, unreadable files left out."""
        examples = [(f, c) for c in sorted(listed[split]) for f in listed[split][c]]
        random.Random(split).shuffle(examples)  # tfds.ImageFolder's order (seed: split name)
        return [(f, c) for f, c in examples if f not in unreadable]

    def labels(examples):
        return np.asarray([index[c] for _, c in examples], np.int64)

    def held_out(examples, indices):
        """(examples at `indices`, the rest), each in its order."""
        chosen = set(indices.tolist())
        return ([e for i, e in enumerate(examples) if i in chosen],
                [e for i, e in enumerate(examples) if i not in chosen])

    train = ordered("train")
    if draw_test:
        test, train = held_out(train, test_indices(labels(train), test_fraction, TEST_SEED,
                                                   keep))
        test_info = {"source": "folder" if unsplit else "train", "fraction": test_fraction,
                     "seed": TEST_SEED, "stratified": True, "count": len(test)}
    else:
        test, test_info = ordered("test"), {"source": "test"}
    if draw_validation:
        validation, train = held_out(train, validation_indices(labels(train),
                                                               validation_fraction))
        info = {"source": "train", "fraction": validation_fraction, "seed": VALIDATION_SEED,
                "stratified": True, "count": len(validation)}
    else:
        validation, info = ordered("validation"), {"source": "validation"}

    def decoded(examples):
        """Unbatched (uint8 [H, W, channels], int64 label) pairs, read and decoded lazily."""
        paths = tf.constant([f for f, _ in examples], tf.string, shape=[len(examples)])
        ys = tf.constant(labels(examples), tf.int64, shape=[len(examples)])

        def decode(f, y):
            image = tf.io.decode_image(tf.io.read_file(f), channels=channels, dtype=tf.uint8,
                                       expand_animations=False)
            image.set_shape([None, None, channels])
            return image, y
        return tf.data.Dataset.from_tensor_slices((paths, ys)).map(
            decode, num_parallel_calls=AUTOTUNE)

    image_sizes = {split: dict(collections.Counter(sizes[f] for f, _ in examples))
                   for split, examples in (("train", train), ("validation", validation),
                                           ("test", test))}
    return Dataset(
        name=os.path.basename(root.rstrip("/")),
        train=decoded(train),
        validation=decoded(validation),
        test=decoded(test),
        class_names=class_names,
        image_shape=most_common_size(image_sizes["train"]) + (channels,),
        num_train=len(train),
        num_validation=len(validation),
        num_test=len(test),
        hflip_safe=False,
        validation_split=info,
        test_split=test_info,
        image_sizes=image_sizes,
    )
