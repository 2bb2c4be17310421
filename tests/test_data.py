import json
import os
import time

import numpy as np
import pytest

from tftool import UserError, data


def test_pipeline_batches_scales_and_drops_remainder(digits):
    ds = data.pipeline(digits.train, (8, 8), 64, training=True, augment=True, seed=1,
                       num_examples=digits.num_train)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == digits.num_train // 64
    x, y = batches[0]
    assert x.shape == (64, 8, 8, 1) and x.dtype == np.float32
    assert y.shape == (64,)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_repeated_pipeline_passes_over_every_image_once_per_epoch_in_new_orders(digits):
    # fit.train's form: one iterator for every epoch (steps_per_epoch bounds each epoch)
    ds = data.pipeline(digits.train, (8, 8), 1, training=True, seed=0,
                       num_examples=digits.num_train, repeat=True)
    assert ds.cardinality().numpy() == -1  # tf.data.INFINITE_CARDINALITY
    n = digits.num_train
    x, _ = next(ds.batch(2 * n).as_numpy_iterator())  # two passes, one image per batch
    split = np.stack([img for img, _ in digits.train.as_numpy_iterator()]) / 255.0
    def as_sorted_rows(images):
        return sorted(np.round(images, 4).reshape(n, -1).tolist())
    for one_pass in (x[:n], x[n:]):  # each image exactly once per pass
        np.testing.assert_allclose(as_sorted_rows(one_pass), as_sorted_rows(split), atol=1e-6)
    assert not np.array_equal(x[:n], x[n:])  # reshuffled between passes


def test_eval_pipeline_keeps_every_example_in_order(digits):
    x, y = data.test_arrays(digits, (8, 8), batch_size=100)
    assert x.shape == (digits.num_test, 8, 8, 1)
    raw = np.stack([img for img, _ in digits.test.as_numpy_iterator()]).astype(np.float32)
    np.testing.assert_allclose(x, raw / 255.0, atol=1e-6)  # no augmentation, no resize


def test_resize_changes_spatial_size_only(digits):
    x, _ = next(data.pipeline(digits.test, (16, 16), 8, training=False).as_numpy_iterator())
    assert x.shape == (8, 16, 16, 1)


def test_training_shuffle_is_seeded(digits):
    def first_labels(seed):
        ds = data.pipeline(digits.train, (8, 8), 32, training=True, seed=seed,
                           num_examples=digits.num_train)
        return next(ds.as_numpy_iterator())[1]
    np.testing.assert_array_equal(first_labels(3), first_labels(3))
    assert not np.array_equal(first_labels(3), first_labels(4))


def test_augmentation_changes_images_but_keeps_range(digits):
    x = np.stack([img for img, _ in digits.train.take(64).as_numpy_iterator()]) / 255.0
    aug = data.augmenter((8, 8), seed=0)(x.astype(np.float32), training=True).numpy()
    assert aug.shape == x.shape
    assert np.mean(np.abs(aug - x)) > 0.01
    assert aug.min() >= -1e-6 and aug.max() <= 1.0 + 1e-6


def test_hflip_without_augment_only_mirrors(digits):
    """--noaugment --hflip: every training image is itself or its mirror, and some are
    mirrored (hflip used to be dropped with augmentation)."""
    def batch(**kwargs):
        ds = data.pipeline(digits.train, (8, 8), 64, training=True, seed=1,
                           num_examples=digits.num_train, **kwargs)
        return next(ds.as_numpy_iterator())[0]
    clean, flipped = batch(), batch(augment=False, hflip=True)
    same = np.all(np.isclose(flipped, clean), axis=(1, 2, 3))
    mirrored = np.all(np.isclose(flipped, clean[:, :, ::-1]), axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert np.sum(mirrored & ~same) >= 10  # about half of 64 are flipped


def test_representative_dataset_yields_calibration_batches(digits):
    samples = list(data.representative_dataset(digits, (8, 8), num_samples=20, seed=0)())
    assert len(samples) == 20
    assert all(len(s) == 1 and s[0].shape == (1, 8, 8, 1) for s in samples)
    assert all(s[0].dtype == np.float32 for s in samples)


def test_folder_dataset_keeps_grayscale(digits_folder, digits):
    ds = data.load(f"folder:{digits_folder}")
    assert ds.image_shape == (8, 8, 1)  # detected from the PNGs
    assert ds.num_train == digits.num_train and ds.num_test == digits.num_test
    assert ds.class_names == [f"class_{i}" for i in range(10)]
    image, _ = next(ds.train.as_numpy_iterator())
    assert image.shape == (8, 8, 1)
    rgb = data.load(f"folder:{digits_folder}", channels=3)
    assert next(rgb.train.as_numpy_iterator())[0].shape == (8, 8, 3)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        data.load(f"folder:{tmp_path}/nope")
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="no class folders"):
        data.load(f"folder:{tmp_path}")


def test_a_class_of_one_image_is_refused_with_the_fix(tmp_path):
    from PIL import Image

    for split, counts in (("train", {"a": 5, "b": 1}), ("test", {"a": 1, "b": 1})):
        for c, n in counts.items():
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8)).save(tmp_path / split / c / f"{i}.png")
    with pytest.raises(UserError, match=r"train/b/ has 1 image\(s\).*add images to train/b/"):
        data.load(f"folder:{tmp_path}")


def test_unknown_dataset_is_a_user_error():
    with pytest.raises(UserError, match="unknown data set"):
        data.load("nosuch")


def test_catalog_dataset_absent_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(data.sources, "_network_reachable", lambda *a, **k: False)
    start = time.time()
    with pytest.raises(UserError, match="not prepared"):
        data.load("mnist", data_dir=str(tmp_path))
    assert time.time() - start < 30


def test_catalog_dataset_nodownload(tmp_path):
    with pytest.raises(UserError, match="--nodownload"):
        data.load("mnist", data_dir=str(tmp_path), download=False)



def test_representative_dataset_samples_every_part_of_a_class_ordered_split():
    import tensorflow as tf

    # 1,000 images listed class by class (as ImageFolder lists them): pixel value = class.
    labels = np.repeat(np.arange(10), 100)
    images = np.broadcast_to(labels[:, None, None, None] * 20, (1000, 4, 4, 1)).astype(np.uint8)
    train = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = data.Dataset("ordered", train, train, [str(i) for i in range(10)], (4, 4, 1), 1000,
                           1000, False)

    def classes(seed):
        return [int(round(s[0][0, 0, 0, 0] * 255 / 20)) for s in
                data.representative_dataset(dataset, (4, 4), num_samples=30, seed=seed)()]
    first = classes(0)
    assert len(first) == 30 and len(set(first)) >= 8  # not the first class only
    assert first == classes(0) and first != classes(1)
    assert first != sorted(first)  # yielded in a shuffled order, not class by class


def test_sample_pixels_draws_from_the_whole_split_at_the_model_size():
    import tensorflow as tf

    labels = np.repeat(np.arange(10), 100)
    images = np.broadcast_to(labels[:, None, None, None] * 20, (1000, 4, 4, 1)).astype(np.uint8)
    train = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = data.Dataset("ordered", train, train, [str(i) for i in range(10)], (4, 4, 1), 1000,
                           1000, False)
    pixels = data.sample_pixels(dataset, (8, 8), 64, seed=0)
    assert pixels.shape == (64, 8, 8, 1) and pixels.dtype == np.uint8
    assert len(set(pixels[:, 0, 0, 0] // 20)) >= 8  # every part of the class-ordered split
    np.testing.assert_array_equal(pixels, data.sample_pixels(dataset, (8, 8), 64, seed=0))
    assert len(data.sample_pixels(dataset, (4, 4), 5000)) == 1000  # capped at the split


def test_validation_split_is_stratified_seeded_and_disjoint_from_train(digits):
    from tftool.data import digits as digits_builder

    assert digits.validation_split == {"source": "train", "fraction": 0.1,
                                       "seed": data.VALIDATION_SEED, "stratified": True,
                                       "count": digits.num_validation}
    train = [(img.tobytes(), int(y)) for img, y in digits.train.as_numpy_iterator()]
    validation = [(img.tobytes(), int(y)) for img, y in digits.validation.as_numpy_iterator()]
    assert (len(train), len(validation)) == (digits.num_train, digits.num_validation)
    assert len(validation) == 143  # 10% of each class of the 1,438 train digits, rounded
    # every class keeps its share, and no image is in both (digits has no duplicate pixels
    # across these splits: the sets of images are disjoint)
    counts = np.bincount([y for _, y in validation], minlength=10)
    totals = counts + np.bincount([y for _, y in train], minlength=10)
    assert np.all(np.abs(counts - 0.1 * totals) <= 0.5 + 1e-9)
    assert not {x for x, _ in train} & {x for x, _ in validation}
    # the same labels give the same indices on every call; another fraction other indices
    labels = np.array([y for _, y in train + validation])
    a = data.validation_indices(labels, 0.1)
    np.testing.assert_array_equal(a, data.validation_indices(labels, 0.1))
    assert len(data.validation_indices(labels, 0.2)) == pytest.approx(0.2 * len(labels), abs=5)
    assert digits_builder.TEST_FRACTION == 0.2  # the test split is untouched by any of this
    # a class of one image stays in train; a split of 2 images still gives 1 validation image
    assert list(data.validation_indices(np.array([0, 1]), 0.1)) in ([0], [1])
    with pytest.raises(UserError, match="at least 2"):
        data.validation_indices(np.array([0]), 0.1)


def test_a_validation_folder_is_used_as_is(digits_folder, tmp_path):
    import shutil

    root = tmp_path / "with_validation"
    shutil.copytree(digits_folder, root)
    for class_dir in (root / "train").iterdir():  # move 5 images of each class
        target = root / "validation" / class_dir.name
        target.mkdir(parents=True)
        for f in sorted(class_dir.iterdir())[:5]:
            f.rename(target / f.name)
    ds = data.load(f"folder:{root}")
    assert ds.validation_split == {"source": "validation"}
    assert ds.num_validation == 50 and len(list(ds.validation.as_numpy_iterator())) == 50
    assert ds.num_train == 1438 - 50
    with pytest.raises(UserError, match="validation_fraction=0.7"):
        data.load(f"folder:{root}", validation_fraction=0.7)


def test_flip_shift_moves_whole_pixels_by_at_most_two_with_reflected_borders():
    """The photo policy: every augmented image is the original (or its mirror) shifted by
    at most data.SHIFT_PIXELS whole pixels, its borders reflected (no black, no blur), and
    most images move."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.float32) / 255.0
    aug = data.augmenter((32, 32), hflip=True, seed=0, augmentation="flip_shift")(
        x, training=True).numpy()
    moved = 0
    for original, out in zip(x, aug):
        found = None
        for image in (original, original[:, ::-1]):
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    shifted = np.roll(image, (dy, dx), axis=(0, 1))
                    inner = shifted[2:-2, 2:-2]
                    if np.allclose(out[2:-2, 2:-2], inner):
                        found = (dy, dx, image is not original)
        assert found is not None  # a whole-pixel shift of the image or its mirror
        moved += found != (0, 0, False)
        assert set(np.unique(out)) <= set(np.unique(original))  # reflected, not filled
    assert moved >= 40


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="geometric, flip_shift"):
        data.augmenter((32, 32), augmentation="mixup")


# ---- folders as people keep their photos ----------------------------------------------------
def _write(path, size, value=0):
    """A PNG at `path` of `size` (height, width), RGB, every pixel `value` (0..255)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), (value, value, value)).save(path)


def _images(split):
    """{image bytes: label} of an unbatched split."""
    return {x.tobytes(): int(y) for x, y in split.as_numpy_iterator()}


def test_a_folder_of_mixed_sizes_trains_at_its_most_common_size(tmp_path):
    # train: 6 images of 24x32 (height x width), 1 of 16x16, 1 of 40x30; test: 2 of 48x64
    for c in ("a", "b"):
        for i in range(3):
            _write(tmp_path / "train" / c / f"{i}.png", (24, 32))
        _write(tmp_path / "test" / c / "0.png", (48, 64))
    _write(tmp_path / "train" / "a" / "small.png", (16, 16))
    _write(tmp_path / "train" / "b" / "tall.png", (40, 30))
    ds = data.load(f"folder:{tmp_path}")
    assert ds.image_shape == (24, 32, 3)  # not the first file's (train/a/0.png's) by luck
    assert data.resolve_image_size(ds, None) == (24, 32)
    source = data.image_size_source(ds, (24, 32), given=False)
    assert source["source"] == "most common train size" and source["resized"] == 4
    assert source["text"] == (
        f"24x32 (height x width; the most common size of {ds.num_train} train images; 4 images "
        f"of other sizes, in all splits, are resized bilinear, antialiased)")
    x, _ = next(data.pipeline(ds.test, (24, 32), 2, training=False).as_numpy_iterator())
    assert x.shape == (2, 24, 32, 3)  # the other sizes are resized to it
    assert data.size_setting((24, 32)) == [24, 32] and data.size_setting((32, 32)) == 32
    assert data.resolve_image_size(ds, [24, 32]) == (24, 32)  # as config.json records it
    # --image_size replaces it, and says so
    assert data.resolve_image_size(ds, 16) == (16, 16)
    given = data.image_size_source(ds, (16, 16), given=True)
    assert given["source"] == "--image_size" and given["resized"] == 9  # all but small.png
    assert given["text"] == ("16x16 (--image_size; the most common train size is 24x32; 9 "
                             "images of other sizes, in all splits, are resized bilinear, "
                             "antialiased)")
    # the model card sees only the recorded size: another size than the data's is --image_size
    assert data.image_size_source(ds, (16, 16))["source"] == "--image_size"
    assert data.image_size_source(ds, (24, 32))["source"] == "most common train size"
    # the folder: 64x48, 48x64, 96x96 and 40x30, one each: a tie, the largest wins
    assert data.most_common_size({(48, 64): 1, (64, 48): 1, (96, 96): 1, (30, 40): 1}) == (96, 96)
    assert data.most_common_size({(48, 64): 2, (96, 96): 1}) == (48, 64)


def test_large_photos_are_capped_at_224_on_the_longer_side_keeping_the_aspect(tmp_path):
    assert data.capped_size(3024, 4032) == (168, 224)  # a phone photo, landscape
    assert data.capped_size(4032, 3024) == (224, 168)
    assert data.capped_size(1080, 1920) == (126, 224)
    assert data.capped_size(224, 100) == (224, 100) and data.capped_size(32, 32) == (32, 32)
    for c in ("a", "b"):
        for i in range(3):
            _write(tmp_path / "train" / c / f"{i}.png", (300, 400))
        _write(tmp_path / "test" / c / "0.png", (300, 400))
    ds = data.load(f"folder:{tmp_path}")
    assert ds.image_shape[:2] == (300, 400) and data.resolve_image_size(ds, None) == (168, 224)
    source = data.image_size_source(ds, (168, 224), given=False)
    assert source["capped_at"] == 224 and source["native"] == [300, 400]
    assert source["text"] == (f"168x224 (height x width; the most common size of "
                              f"{ds.num_train} train images, 300x400, with its longer side "
                              f"capped at 224; all 8 images are resized bilinear, antialiased)")


def _unsplit(root, counts, offset=0):
    """root/<class>/<i>.png, `counts` {class: images}, each image a distinct grey level."""
    value = offset
    for c, n in counts.items():
        for i in range(n):
            _write(root / c / f"{i}.png", (4, 4), value)
            value += 1


def test_an_unsplit_folder_gets_a_stratified_seeded_test_split(tmp_path):
    counts = {"a": 20, "b": 10, "c": 5}
    _unsplit(tmp_path / "photos", counts)
    ds = data.load(f"folder:{tmp_path}/photos")
    assert ds.class_names == ["a", "b", "c"]
    assert ds.test_split == {"source": "folder", "fraction": 0.2, "seed": data.TEST_SEED,
                             "stratified": True, "count": 7}
    test, train, validation = _images(ds.test), _images(ds.train), _images(ds.validation)
    # round(0.2 x each class), at least one: 4, 2, 1
    assert sorted(test.values()) == [0] * 4 + [1] * 2 + [2]
    assert (len(test), len(train), len(validation)) == (ds.num_test, ds.num_train,
                                                        ds.num_validation)
    assert not set(test) & set(train) and not set(test) & set(validation)
    assert not set(train) & set(validation) and len(test) + len(train) + len(validation) == 35
    assert ds.validation_split["source"] == "train" and ds.num_validation == 3  # 10% of the rest
    assert data.test_split_source(ds) == (
        "20% of each class of the folder, 7 of 35 images (stratified, fixed seed "
        f"{data.TEST_SEED}; --test_fraction sets the share)")
    # every stage loads the folder again: the same split, whatever the order of the loads
    again = data.load(f"folder:{tmp_path}/photos")
    assert _images(again.test) == test and _images(again.validation) == validation
    wider = data.load(f"folder:{tmp_path}/photos", test_fraction=0.4)
    assert wider.num_test == 8 + 4 + 2 and wider.test_split["fraction"] == 0.4
    with pytest.raises(UserError, match=r"--test_fraction=0.7: must be in \(0, 0.5\]"):
        data.load(f"folder:{tmp_path}/photos", test_fraction=0.7)


def test_a_train_folder_without_test_gets_the_same_split(tmp_path):
    _unsplit(tmp_path / "train", {"a": 10, "b": 6})
    ds = data.load(f"folder:{tmp_path}")
    assert ds.test_split["source"] == "train" and ds.test_split["count"] == 2 + 1
    test = _images(ds.test)
    assert not set(test) & set(_images(ds.train)) and not set(test) & set(_images(ds.validation))
    assert _images(data.load(f"folder:{tmp_path}").test) == test
    assert "of each class of train/, 3 of 16 images" in data.test_split_source(ds)
    # with validation/ beside it, only the test split is drawn from train/
    _unsplit(tmp_path / "validation", {"a": 2, "b": 2}, offset=100)
    ds = data.load(f"folder:{tmp_path}")
    assert ds.validation_split == {"source": "validation"} and ds.num_validation == 4
    assert (ds.num_train, ds.num_test) == (13, 3)
    assert data.test_split_source(ds).startswith("20% of each class of train/, 3 of 16 images")
    # a test/ folder alone is not a data set
    (tmp_path / "train").rename(tmp_path / "test")
    with pytest.raises(UserError, match="missing train/ subfolder beside test/"):
        data.load(f"folder:{tmp_path}")


def test_a_class_too_small_to_split_is_one_line_naming_the_fix(tmp_path):
    _unsplit(tmp_path, {"a": 10, "b": 2})
    with pytest.raises(UserError, match=r"b/ has 2 image\(s\) \(1 class\(es\) with fewer than 3\); "
                                        r"the test and validation splits are drawn from each "
                                        r"class's images, so add images to b/ or remove the "
                                        r"class$"):
        data.load(f"folder:{tmp_path}")


def test_a_path_without_folder_prefix_suggests_it(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    with pytest.raises(UserError, match=rf"^--dataset={tmp_path}/photos: a folder of images is "
                                        rf"given as folder:PATH; use "
                                        rf"--dataset=folder:{tmp_path}/photos$"):
        data.load(f"{tmp_path}/photos")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="use --dataset=folder:photos/$"):
        data.load("photos/")


def test_no_images_names_every_extension_read_and_what_is_there(tmp_path):
    with pytest.raises(UserError, match=r"no such directory; give a folder of class folders of "
                                        r"\.png, \.jpg or \.jpeg \(any case\) images"):
        data.load(f"folder:{tmp_path}/nope")
    for c in ("a", "b"):
        (tmp_path / "heic" / c).mkdir(parents=True)
        (tmp_path / "heic" / c / "IMG_0001.HEIC").write_bytes(b"\0" * 8)
    with pytest.raises(UserError, match=r"the folder has no class folders with \.png, \.jpg or "
                                        r"\.jpeg \(any case\) images \(it holds 2 \.heic "
                                        r"file\(s\), which are not read: convert them to \.jpg\)"):
        data.load(f"folder:{tmp_path}/heic")
    _write(tmp_path / "loose" / "0.JPG", (4, 4))  # any case is read, but not outside a class
    with pytest.raises(UserError, match=r"\(1 image\(s\) lie directly in it: put each class's "
                                        r"images in a folder of their own\)"):
        data.load(f"folder:{tmp_path}/loose")


def test_several_corrupt_images_are_counted_and_the_first_named(tmp_path):
    _unsplit(tmp_path, {"a": 5, "b": 5})
    for i in range(5):
        (tmp_path / "a" / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r": 5 images cannot be decoded: a/0.png \(.+\), a/1.png "
                                        r"\(.+\), a/2.png \(.+\) and 2 more; replace or delete "
                                        r"them, or pass --skip_corrupt"):
        data.load(f"folder:{tmp_path}")


def test_an_unsplit_folder_of_mixed_sizes_trains_saying_its_size_and_test_split(tmp_path):
    """What a user with photos/<class>/*.jpg of several sizes meets: the size and the drawn
    test split are printed before training, recorded in config.json and metrics.json, and
    export scores the same test images."""
    from inprocess import run_main

    photos = tmp_path / "photos"
    for c, value in (("cat", 40), ("dog", 200)):
        for i in range(14):
            _write(photos / c / f"{i}.png", (24, 32), value + i)
        _write(photos / c / "odd.png", (30, 40), value)
    workdir = str(tmp_path / "w")
    result = run_main("train", f"--dataset=folder:{photos}", f"--workdir={workdir}",
                      "--epochs=1", "--warmup_epochs=0", "--model=small_cnn", "--width=4",
                      "--per_replica_batch_size=8", "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [l for l in result.stdout.splitlines() if l.startswith("tftool-train: ")]
    assert lines[0] == ("tftool-train: input 24x32 (height x width; the most common size of 22 "
                        "train images; 2 images of other sizes, in all splits, are resized "
                        "bilinear, antialiased)"), result.stdout
    assert lines[1] == ("tftool-train: test split: 20% of each class of the folder, 6 of 30 "
                        "images (stratified, fixed seed 20261203; --test_fraction sets the "
                        "share)"), result.stdout
    config = json.load(open(os.path.join(workdir, "float", "config.json")))
    assert config["image_size"] == [24, 32] and config["test_fraction"] == 0.2
    metrics = json.load(open(os.path.join(workdir, "float", "metrics.json")))
    assert metrics["test_split"]["count"] == 6 and metrics["input_size"]["size"] == [24, 32]
    export_dir = str(tmp_path / "e")
    result = run_main("export", f"--workdir={workdir}", f"--export_dir={export_dir}",
                      "--variants=float32", "--allow_chance_accuracy", "--max_accuracy_drop=1")
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.load(open(os.path.join(export_dir, "photos_small_cnn_float32.json")))
    assert card["test_examples"] == 6 and card["input"]["shape"][1:3] == [24, 32]
