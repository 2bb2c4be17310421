"""Training presets: one named, frozen set of settings per recipe, the only home of the float
model's training defaults; and FINE_TUNING, what every later stage (QAT, pruning, clustering,
distillation) trains with unless its own defaults (jobs.DEFAULTS) say otherwise.

A preset fixes the network, the augmentation, the optimizer and its schedule, label smoothing
and weight averaging. `tftool-train --preset=NAME` picks one; `--preset=auto` (the default)
picks by the data (`choose`): photos get PHOTO, everything else (the 8x8 digits, grayscale
scans, inputs where a mirror changes the class) DIGITS. A flag the user gives overrides that
one field of the preset and nothing else; which preset ran, and why, is printed, recorded in
config.json and metrics.json, and copied into every model card.

Each preset's `source` names the recipe it follows; the measured results that chose its
values are in docs/photo_recipe.md (`benchmarks/photo_recipe.py` reproduces them).
"""
import dataclasses
from typing import Optional

from tftool import UserError


@dataclasses.dataclass(frozen=True)
class Preset:
    """The float model's training settings. Field names are the flag names (tftool-train
    --help), so a given flag replaces exactly its field (`resolve`).

    epochs: training epochs; per_replica_batch_size: images per replica per step;
    learning_rate: peak rate (for per_replica_batch_size × 1 replica); lr_schedule: a name of
    train/schedules.py; warmup_epochs: linear warm-up of cosine_warmup; optimizer: adam or sgd
    (Nesterov); momentum: SGD's; weight_decay: decoupled, per step × learning rate;
    label_smoothing: ε of the cross-entropy; augment / augmentation: on and which policy
    (data.AUGMENTATIONS); hflip: random horizontal flips (None: only for data sets whose
    classes survive a mirror, data.HFLIP_SAFE); use_ema / ema_momentum: a moving average of
    the weights replaces them at the end; model / width: the builder (models.MODELS) and its
    width (None: the builder's default).
    """
    name: str
    source: str
    model: str
    width: Optional[int]
    epochs: int
    per_replica_batch_size: int
    learning_rate: float
    lr_schedule: str
    warmup_epochs: float
    optimizer: str
    momentum: float
    weight_decay: float
    label_smoothing: float
    augment: bool
    augmentation: str
    hflip: Optional[bool]
    use_ema: bool
    ema_momentum: float


# What tftool-train did before presets, kept for the data it was tuned on (the 8x8 digits:
# README's seed tables), and for any input where a mirror can change the class.
DIGITS = Preset(
    name="digits",
    source="tftool's small-CNN recipe, tuned on the built-in 8x8 digits (Adam, cosine with "
           "warm-up, translation/rotation/zoom/contrast augmentation)",
    model="small_cnn", width=None, epochs=30, per_replica_batch_size=64, learning_rate=3e-3,
    lr_schedule="cosine_warmup", warmup_epochs=1.0, optimizer="adam", momentum=0.9,
    weight_decay=0.0, label_smoothing=0.0, augment=True, augmentation="geometric",
    hflip=None, use_ema=False, ema_momentum=0.99)

# The photo recipe: airbench's network and augmentation (Jordan 2024, arXiv:2404.00498) with
# the schedule of Page's fast ResNet training ("How to train your ResNet", 2018): Nesterov SGD
# with a short warm-up, label smoothing 0.2. The measurements behind each value, and those
# kept from the sources although within noise here (whitening, label smoothing), are in
# docs/photo_recipe.md.
PHOTO = Preset(
    name="photo",
    source="airbench (Jordan 2024, arXiv:2404.00498) network and flip + 2-px reflected-shift "
           "augmentation; Nesterov SGD, warm-up + cosine, label smoothing 0.2 (Page 2018, "
           "'How to train your ResNet')",
    model="airbench", width=None, epochs=16, per_replica_batch_size=256, learning_rate=0.2,
    lr_schedule="cosine_warmup", warmup_epochs=1.0, optimizer="sgd", momentum=0.9,
    weight_decay=5e-3, label_smoothing=0.2, augment=True, augmentation="flip_shift",
    hflip=True, use_ema=False, ema_momentum=0.99)

# What every stage after the float one (QAT, pruning, clustering, distillation) trains with
# unless its own entry below says otherwise: a per-replica batch of 64 (the global batch its
# learning rate was tuned at, --reference_batch_size), Adam without weight decay, label
# smoothing or weight averaging, no warm-up, augmentation on. The augmentation policy and the
# flips are the float model's when it recorded them (cli/shared.train_config, INHERITED);
# "geometric" is the policy of a float model that did not.
FINE_TUNING = {"per_replica_batch_size": 64, "warmup_epochs": 0.0, "optimizer": "adam",
               "momentum": 0.9, "weight_decay": 0.0, "label_smoothing": 0.0, "use_ema": False,
               "ema_momentum": 0.99, "augment": True, "augmentation": "geometric"}

PRESETS = {p.name: p for p in (DIGITS, PHOTO)}
CHOICES = ("auto",) + tuple(PRESETS)
FIELDS = tuple(f.name for f in dataclasses.fields(Preset) if f.name not in ("name", "source"))
# The settings a later stage (QAT, pruning, clustering, distillation) takes from the float
# model's preset unless its own flag is given: what the images look like in training. The
# optimizer and schedule of fine-tuning are the stage's own (jobs.DEFAULTS).
INHERITED = ("augmentation", "hflip")
# The smallest side auto takes for a photo: CIFAR's 32 px, the size the recipe was measured
# at. Smaller RGB images (16-px icons, upscaled digits) keep the digits recipe.
PHOTO_MIN_SIZE = 32


def choose(requested, dataset_name, channels, image_size, hflip_safe):
    """The preset to train with and the reason, in words.

    Args:
      requested: "auto" or a name in PRESETS (the --preset flag).
      dataset_name: "digits", a TFDS catalog name or "folder:PATH".
      channels: input channels (1 or 3); image_size: (height, width) trained at.
      hflip_safe: whether the data set's classes are known to survive a mirror
        (data.HFLIP_SAFE).
    Returns:
      (Preset, reason str).
    Raises:
      UserError: a name that is neither auto nor a preset (lists them).

    auto: PHOTO for 3-channel images of at least PHOTO_MIN_SIZE (32) px whose classes survive a
    mirror — a TFDS data set listed in data.HFLIP_SAFE, or a folder of RGB images (assumed to
    be photos: say --preset=digits or --nohflip for text, arrows or other mirror-sensitive
    classes); DIGITS for everything else.
    """
    if requested != "auto":
        if requested not in PRESETS:
            raise UserError(f"--preset={requested}: no such preset; use one of "
                            f"{', '.join(CHOICES)}")
        return PRESETS[requested], f"--preset={requested}"
    size = f"{image_size[0]}x{image_size[1]}"
    is_folder = dataset_name.startswith("folder:")
    if channels != 3:
        return DIGITS, f"auto: {channels}-channel images are not photos"
    if min(image_size) < PHOTO_MIN_SIZE:
        return DIGITS, f"auto: {size} images are smaller than {PHOTO_MIN_SIZE} px"
    if not (hflip_safe or is_folder):
        return DIGITS, (f"auto: {dataset_name} is not known to keep its classes under a "
                        f"mirror")
    kind = "a folder of" if is_folder else f"{dataset_name}:"
    return PHOTO, (f"auto: {kind} {size} RGB photos (--preset=digits or --nohflip where a "
                   f"mirror changes the class)")


def resolve(preset, given):
    """The settings a run trains with: the preset's fields, each replaced by the value in
    `given` ({field: value} of the flags the user gave; other keys are ignored).
    Returns: {field: value} for every name in FIELDS."""
    values = {name: getattr(preset, name) for name in FIELDS}
    values.update({k: v for k, v in given.items() if k in values})
    return values
