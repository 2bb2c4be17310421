"""Train images drawn at random for calibration: representative_dataset (TFLite int8
calibration) and sample_pixels (uint8 pixels: BN re-estimation, airbench's whitening), both
seeded and streamed so memory holds only the drawn images."""
import numpy as np

from tftool.data.input_pipeline import preprocess, to_pixels
from tftool.data.splits import _drawn


def representative_dataset(data, image_size, num_samples=100, seed=0):
    """A TFLite `representative_dataset`: a callable that yields [float32 1xHxWxC] lists.

    Samples are `num_samples` train images drawn uniformly without replacement (seeded by
    `seed`), so every class is represented although ImageFolder lists files class by class.
    Memory is bounded by `num_samples` images, not by the split: the split is streamed once
    and only the drawn indices are kept (the shuffle buffer used before held up to 10,000
    decoded images: 768 MB at 160x160x3 uint8).
    Follows https://www.tensorflow.org/lite/performance/post_training_integer_quant.
    """
    total = data.num_train
    count = min(num_samples, total)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    order = np.random.default_rng(seed + 1).permutation(count)  # no class-by-class runs

    def gen():
        picked = data.train.enumerate().filter(_drawn(chosen, total)).map(
            lambda i, xy: preprocess(xy[0], image_size))
        images = [image.numpy() for image in picked]  # count images, each [H, W, C]
        for i in order[:len(images)]:
            yield [images[i][None]]
    return gen


def sample_pixels(data, image_size, count, seed=0):
    """`count` train images drawn uniformly without replacement, as uint8 [count, H, W, C]
    pixels at `image_size` (to_pixels), in a random order (seeded).

    Memory is `count` images, not the split: the split is streamed once and only the drawn
    indices are kept, so no shuffle buffer over a class-by-class ImageFolder listing is
    needed to mix the classes. Raises ValueError: count < 1.
    """
    if count < 1:
        raise ValueError(f"count={count}: must be ≥ 1")
    count = min(count, data.num_train)
    chosen = np.sort(np.random.default_rng(seed).choice(data.num_train, count, replace=False))
    picked = data.train.enumerate().filter(_drawn(chosen, data.num_train))
    # One array filled in place and shuffled in place: a list plus np.stack plus a permuted
    # copy held three copies (740 MB for 3,200 160-px images).
    pixels = np.empty((count, *image_size, data.image_shape[-1]), np.uint8)
    seen = 0
    for _, xy in picked:
        pixels[seen] = to_pixels(xy[0], image_size).numpy()
        seen += 1
    pixels = pixels[:seen]  # fewer when --skip_corrupt dropped a drawn file
    np.random.default_rng(seed + 1).shuffle(pixels)
    return pixels
