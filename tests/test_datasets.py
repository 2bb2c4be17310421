import numpy as np

from tftool.data import digits as digits_builder


def test_digits_split_sizes_and_shapes(digits):
    assert digits.num_train + digits.num_validation + digits.num_test == 1797
    assert 350 <= digits.num_test <= 370  # stratified 20%
    assert digits.class_names == [str(i) for i in range(10)]
    assert digits.image_shape == (8, 8, 1)
    image, label = next(digits.train.as_numpy_iterator())
    assert image.shape == (8, 8, 1) and image.dtype == np.uint8
    assert 0 <= label < 10


def test_digits_split_is_fixed_stratified_and_disjoint():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train_a, test_a = digits_builder.split_indices(len(labels), labels)
    train_b, test_b = digits_builder.split_indices(len(labels), labels)
    np.testing.assert_array_equal(test_a, test_b)
    assert not set(train_a) & set(test_a)
    assert len(train_a) + len(test_a) == len(labels)
    per_class = np.bincount(labels[test_a], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(per_class - 0.2) < 0.02)


def test_digits_pixels_use_full_uint8_range(digits):
    images = np.stack([x for x, _ in digits.test.as_numpy_iterator()])
    assert images.max() == 255 and images.min() == 0
