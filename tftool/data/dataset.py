"""The `Dataset` every loader returns: unbatched (uint8 image HxWxC, int64 label) train,
validation and test splits plus what describes them; SPLITS names the splits and AUTOTUNE is
the tf.data setting the loaders and pipelines share."""
import dataclasses

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


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
