"""Training presets (tftool/train/presets.py): which one the data get, that flags replace single
fields, that the photo recipe's pieces (label smoothing, the airbench network) do what their
docstrings say, and that tftool-train prints and records its choice."""
import json

import numpy as np
import pytest

from tftool import UserError, jobs, models
from tftool.train import presets


@pytest.mark.parametrize("name,channels,size,safe,expected", [
    ("digits", 1, (8, 8), False, "digits"),
    ("mnist", 1, (28, 28), False, "digits"),
    ("cifar10", 3, (32, 32), True, "photo"),
    ("folder:/data/pets", 3, (64, 64), False, "photo"),
    ("folder:/data/scans", 1, (64, 64), False, "digits"),
    ("svhn_cropped", 3, (32, 32), False, "digits"),  # house numbers: a mirror is wrong
    ("folder:/data/tiny", 3, (8, 8), False, "digits"),
    ("folder:/data/icons", 3, (16, 16), False, "digits"),
    ("folder:/data/wide", 3, (32, 48), False, "photo"),
])
def test_auto_picks_photo_for_rgb_photos_only(name, channels, size, safe, expected):
    preset, reason = presets.choose("auto", name, channels, size, safe)
    assert preset.name == expected
    assert reason.startswith("auto: ")


def test_an_explicit_preset_wins_and_an_unknown_one_names_the_choices():
    preset, reason = presets.choose("photo", "digits", 1, (8, 8), False)
    assert preset is presets.PHOTO and reason == "--preset=photo"
    with pytest.raises(UserError, match="auto, digits, photo"):
        presets.choose("cifar", "digits", 1, (8, 8), False)


def test_a_given_flag_replaces_its_field_only():
    values = presets.resolve(presets.PHOTO, {"epochs": 3, "label_smoothing": 0.0,
                                            "workdir": "w"})
    assert values["epochs"] == 3 and values["label_smoothing"] == 0.0
    assert values["optimizer"] == "sgd" and values["model"] == "airbench"
    assert "workdir" not in values and set(values) == set(presets.FIELDS)


def test_every_preset_warms_up():
    """cli/shared.check_training_flags refuses --warmup_epochs ≥ --epochs before the data
    (and so the preset) are known, assuming the preset's schedule warms up."""
    assert {p.lr_schedule for p in presets.PRESETS.values()} == {"cosine_warmup"}


def test_the_float_stage_defaults_have_one_home():
    for key, value in jobs.DEFAULTS["float"].items():
        assert getattr(presets.DIGITS, key) == value


def test_label_smoothing_matches_keras_categorical_crossentropy():
    import tf_keras as keras
    from tftool.train import losses

    logits = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    smoothed = losses.loss_for(0.2)
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(
        np.eye(4)[labels], logits)
    assert np.isclose(float(smoothed(labels, logits)), float(expected), atol=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(smoothed(labels, logits)) > float(plain) - 1  # both finite, comparable
    assert not np.isclose(float(smoothed(labels, logits)), float(plain))
    clone = losses.SparseCrossentropyWithSmoothing.from_config(smoothed.get_config())
    assert clone.label_smoothing == 0.2


def test_airbench_has_the_documented_shape_and_cost():
    model = models.build("airbench", (32, 32, 3), 10)
    assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)
    assert models.fold_logit_scale(model).layers[-1].name == "logits"
    # 64/128/256 at 31, 15 and 7 px: 65.4 M multiply-accumulates per image (docstring)
    assert round(models.macs(model) / 1e6, 1) == 65.4
    narrow = models.build("airbench", (32, 32, 3), 10, width=16)
    assert models.macs(narrow) < models.macs(model) / 8  # 4x fewer channels: ~1/16 per conv
    with pytest.raises(UserError, match="--image_size=32"):
        models.build("airbench", (8, 8, 1), 10)


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """A learnable 32x32 RGB folder: 3 classes told apart by their mean colour, 40 train and
    12 test images each (mirror-invariant, as photos' classes are)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("rgb_photos")
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    for split, count in (("train", 40), ("test", 12)):
        for label, colour in enumerate(colours):
            path = root / split / f"class_{label}"
            path.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(colour, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(path / f"{i}.png")
    return str(root)


def test_train_prints_and_records_the_photo_preset_and_later_stages_inherit_its_images(
        rgb_folder, tmp_path):
    from inprocess import run_main

    work = f"--workdir={tmp_path}/w"
    result = run_main("train", work, f"--dataset=folder:{rgb_folder}", "--epochs=2",
                      "--width=8", "--per_replica_batch_size=16", "--learning_rate=0.05")
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if "preset" in l]
    assert line and line[0].startswith("tftool-train: preset photo (auto: a folder of 32x32 "
                                       "RGB photos"), result.stdout
    assert "flags given: epochs, learning_rate, per_replica_batch_size, width" in line[0]
    config = json.load(open(f"{tmp_path}/w/float/config.json"))
    metrics = json.load(open(f"{tmp_path}/w/float/metrics.json"))
    assert config["preset"] == "photo" and metrics["preset"] == "photo"
    assert metrics["model"] == "airbench" and metrics["epochs"] == 2
    assert metrics["training"]["augmentation"] == "flip_shift"
    assert metrics["training"]["label_smoothing"] == 0.2 and metrics["training"]["hflip"]
    assert metrics["test_accuracy"] >= 0.9  # colours: learnable in 2 epochs
    flags = open(f"{tmp_path}/w/float/flags.txt").read()
    assert "--optimizer=sgd" in flags and "--preset=auto" in flags  # replays the same run
    result = run_main("quantize", work, "--epochs=1", "--per_replica_batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    qat = json.load(open(f"{tmp_path}/w/qat/metrics.json"))
    assert qat["augmentation"] == "flip_shift" and qat["hflip"] is True


def test_train_keeps_the_digits_recipe_for_digits(tmp_path, tfds_dir):
    from inprocess import run_main

    result = run_main("train", f"--workdir={tmp_path}/w", f"--data_dir={tfds_dir}",
                      "--epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tftool-train: preset digits (auto: 1-channel images are not photos): small_cnn, " \
           "1 epochs, adam 0.003" in result.stdout
    metrics = json.load(open(f"{tmp_path}/w/float/metrics.json"))
    assert metrics["training"]["augmentation"] == "geometric"
    assert metrics["training"]["hflip"] is False


def test_the_logit_scale_folds_into_the_head_exactly():
    model = models.build("airbench", (16, 16, 3), 5, width=4, stem_width=4)
    assert model.layers[-1].name == models.LOGIT_SCALE_LAYER
    x = np.random.default_rng(1).random((4, 16, 16, 3)).astype(np.float32)
    folded = models.fold_logit_scale(model)
    assert folded.layers[-1].name == models.HEAD_LAYER
    assert len(folded.layers) == len(model.layers) - 1
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    small = models.build("small_cnn", (8, 8, 1), 3, width=4)
    assert models.fold_logit_scale(small) is small


def test_the_whitening_kernel_whitens_the_patches_it_was_made_from():
    """airbench's stem: on the patches it was computed from, the first half of its filters
    gives outputs with (nearly) identity covariance; the second half is the first negated."""
    rng = np.random.default_rng(0)
    base = rng.random((64, 8, 8, 1)) * 255
    pixels = np.concatenate([base, base * 0.5, base * 0.2], axis=-1).astype(np.uint8)
    kernel = models.whitening_kernel(pixels, 2, eps=0.0 + 1e-9)
    assert kernel.shape == (2, 2, 3, 24)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])
    patches = np.lib.stride_tricks.sliding_window_view(pixels / 255.0, (2, 2), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    patches = patches - patches.mean(axis=0)
    out = patches @ kernel.reshape(12, 24)[:, :4]  # the 4 strongest directions
    np.testing.assert_allclose(np.cov(out.T, bias=True), np.eye(4), atol=1e-3)
    model = models.build("airbench", (16, 16, 3), 3, width=4)
    assert models.init_whitening(model, pixels[:, :, :, :])
    np.testing.assert_allclose(model.get_layer(models.WHITENING_LAYER).kernel.numpy(),
                               models.whitening_kernel(pixels, 2), rtol=1e-5, atol=1e-5)


def test_macs_count_the_layers_inside_tfmot_wrappers():
    """The train line's GMAC/s: a pruned or QAT-wrapped model has the MACs of its float model,
    not only those of the layers left unwrapped."""
    from tftool.optimize import prune, qat

    model = models.build("small_cnn", (16, 16, 3), 4, width=4)
    schedule = prune.schedule_steps(10, 0.0, 0.5, 0, None, None)
    pruned = prune.apply(model, schedule, prune.DEFAULT_SKIP, None)
    assert models.macs(pruned) == models.macs(model) > 0
    assert models.macs(qat.apply(model)) == models.macs(model)
