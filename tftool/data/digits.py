"""TFDS builder for scikit-learn's bundled copy of the UCI handwritten digits.

1,797 grayscale images of 8x8 pixels, 10 classes. Source: Alpaydin & Kaynak, "Optical
Recognition of Handwritten Digits", UCI ML repository; the copy shipped inside scikit-learn
(`sklearn.datasets.load_digits`) is read, so preparing the data set needs no network.
The original 0..16 intensities are scaled to uint8 0..255 so the data looks like any other
image data set to the pipeline.
"""
import numpy as np
import tensorflow_datasets as tfds

TEST_FRACTION = 0.2
SPLIT_SEED = 20150101  # fixed: the train/test split must be the same on every machine


def split_indices(num_examples, labels):
    """Returns (train_idx, test_idx): a stratified split with a fixed seed, test ≈ 20%."""
    rng = np.random.RandomState(SPLIT_SEED)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * TEST_FRACTION))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.sort(np.array(train)), np.sort(np.array(test))


class Digits(tfds.core.GeneratorBasedBuilder):
    """UCI handwritten digits (8x8x1 uint8, 10 classes) from scikit-learn, split 80/20."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified 80/20 split with a fixed seed."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=[str(i) for i in range(10)]),
            }),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ship with scikit-learn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        labels = bunch.target.astype(np.int64)
        train_idx, test_idx = split_indices(len(labels), labels)
        return {
            "train": self._generate_examples(images, labels, train_idx),
            "test": self._generate_examples(images, labels, test_idx),
        }

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            yield int(i), {"image": images[i][..., None], "label": int(labels[i])}
