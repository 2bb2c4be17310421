"""The validation and test splits: which images a stratified, seeded draw holds out.

A data set without a validation split of its own gives a share of train (split_validation,
validation_indices, VALIDATION_SEED); a folder without test/ gives a test share the same way
(test_indices, TEST_SEED), drawn before the validation split. Fixed seeds, not the training
--seed, so every run and every stage scores on the same images. test_split_source says in
words how a drawn test split was made.
"""
import numpy as np
import tensorflow as tf

from tftool import UserError

# The stratified validation split drawn from train (split_validation) uses this fixed seed, not
# the training --seed: runs with different seeds are then scored on the same validation images.
VALIDATION_SEED = 20261202
DEFAULT_VALIDATION_FRACTION = 0.1
# A folder without test/ gets a stratified test split (test_indices) drawn with this fixed seed,
# for the same reason: every stage (quantize, prune, export, benchmark load the folder again)
# and every training --seed scores on the same test images.
TEST_SEED = 20261203
DEFAULT_TEST_FRACTION = 0.2


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


def _drawn(indices, total):
    """A tf.data filter for enumerate()d elements: keeps those whose index is in `indices`
    (a lookup in a [total] bool mask: O(1) per element, 1 byte per image)."""
    mask = np.zeros(total, bool)
    mask[indices] = True
    mask = tf.constant(mask)
    return lambda i, xy: tf.gather(mask, tf.minimum(i, total - 1)) & (i < total)


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
