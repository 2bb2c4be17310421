"""Training-time augmentation: the --augmentation policies (AUGMENTATIONS) as Keras
preprocessing layers (augmenter), run in tf.data and never exported."""
import tensorflow as tf
import tf_keras as keras

# Training-time augmentation policies (--augmentation):
#   geometric:  random translation (±10%), rotation (±18°), zoom (±10%) and contrast (±20%)
#               with black (constant) fill: chosen on the 8x8 digits, where flips are wrong.
#   flip_shift: random translation by up to SHIFT_PIXELS pixels with reflected borders; the
#               photo recipe's (airbench, Jordan 2024; He et al. 2016's CIFAR crops), with
#               --hflip on photos. On the development photos the geometric policy cost the
#               float model 2.8-4.4 points against no augmentation (docs/photo_recipe.md).
AUGMENTATIONS = ("geometric", "flip_shift")
SHIFT_PIXELS = 2


def augmenter(image_size, hflip=False, seed=None, augment=True, augmentation="geometric"):
    """Keras preprocessing layers for training-time augmentation, applied in tf.data only.

    With `augment`, the `augmentation` policy (AUGMENTATIONS above); with `hflip`, a
    horizontal flip (either alone: `--noaugment --hflip` flips only). Input and output:
    float32 NxHxWxC in [0, 1]. These layers never go into an exported model.

    Images under 32 px use nearest-neighbour resampling: bilinear resampling blurs every
    augmented 8x8 digit, so training images stop looking like test images (measured on digits:
    test accuracy 0.955 bilinear vs 0.989 nearest, same seed). flip_shift always uses nearest:
    its shifts are whole pixels, so no image is resampled.
    Raises: ValueError: an augmentation policy not in AUGMENTATIONS.
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation={augmentation!r}; allowed: {', '.join(AUGMENTATIONS)}")
    interpolation = "nearest" if min(image_size) < 32 else "bilinear"
    layers, clip = [], False
    if augment and augmentation == "geometric":
        layers = [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant",
                                           interpolation=interpolation, seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="constant",
                                        interpolation=interpolation, seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant",
                                    interpolation=interpolation, seed=seed),
            keras.layers.RandomContrast(0.2, seed=seed),
        ]
        # RandomContrast stretches about the mean without clipping: back into [0, 1], the
        # range the model sees at test time and int8 calibration assumes (a flip stays in it).
        clip = True
    elif augment and augmentation == "flip_shift":
        h, w = image_size
        layers = [keras.layers.RandomTranslation(SHIFT_PIXELS / h, SHIFT_PIXELS / w,
                                                 fill_mode="reflect", interpolation="nearest",
                                                 seed=seed)]
    if hflip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if clip:
        layers.append(keras.layers.Lambda(lambda t: tf.clip_by_value(t, 0.0, 1.0), name="clip"))
    return keras.Sequential(layers, name="augment")
