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
pipeline functions (input_pipeline.py) resize, scale to [0, 1] float32, cache, shuffle, batch
and augment.

Modules, one job each; every public name is re-exported here, so `from tftool import data;
data.load(...)` is the way in:
  dataset.py         the Dataset every loader returns, SPLITS, AUTOTUNE
  sources.py         load(): the digits builder, a TFDS catalog set (offline checks), folder:PATH
  splits.py          the stratified, seeded validation and test splits, their seeds and fractions
  sizes.py           the input size rule (resolve_image_size, image_size_source); pure
                     Python: the module itself imports no TensorFlow (this __init__ does)
  augment.py         the --augmentation policies as Keras preprocessing layers (augmenter)
  input_pipeline.py  preprocess, to_pixels, the tf.data pipeline, test_batches, test_arrays
  calibration.py     train images drawn at random: representative_dataset, sample_pixels
  folder.py          folder:PATH (split or unsplit, every image decoded up front)
  digits.py          the digits TFDS builder
"""
from tftool.data.augment import AUGMENTATIONS, SHIFT_PIXELS, augmenter
from tftool.data.calibration import representative_dataset, sample_pixels
from tftool.data.dataset import AUTOTUNE, SPLITS, Dataset
from tftool.data.input_pipeline import pipeline, preprocess, test_arrays, test_batches, to_pixels
from tftool.data.sizes import (MAX_AUTO_SIZE, RESIZE_METHOD, auto_image_size, capped_size,
                               image_size_source, most_common_size, resolve_image_size,
                               size_setting)
from tftool.data.sources import (FOLDER_PREFIX, HFLIP_SAFE, IMAGE_EXTENSIONS,
                                 IMAGE_EXTENSIONS_TEXT, LARGE_TRAIN, _prepare_quietly, load)
from tftool.data.splits import (DEFAULT_TEST_FRACTION, DEFAULT_VALIDATION_FRACTION, TEST_SEED,
                                VALIDATION_SEED, split_validation, test_indices,
                                test_split_source, validation_indices)
