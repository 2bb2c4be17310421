"""The input size rule: --image_size, else the most common size of the train images with its
longer side capped at MAX_AUTO_SIZE (resolve_image_size); image_size_source says where the size
came from and how many images are resized. No TensorFlow: plain numbers.
"""
import collections

from tftool import UserError

# Without --image_size, a native size whose longer side is larger than this is brought down to
# it keeping the aspect ratio: 224 px is the usual ImageNet input, and a phone photo (3024x4032)
# at full size would need ~240x the compute of 224x168 per image.
MAX_AUTO_SIZE = 224
RESIZE_METHOD = "bilinear, antialiased"  # how to_pixels/preprocess resize an image


def most_common_size(counts):
    """The (height, width) with the most images in `counts` {(height, width): images}; a tie
    goes to the larger size (area, then height): shrinking keeps detail that enlarging
    cannot add. Raises ValueError: empty counts."""
    if not counts:
        raise ValueError("no image sizes to choose from")
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw[0]))


def capped_size(height, width, limit=MAX_AUTO_SIZE):
    """(height, width) with the longer side brought down to `limit` pixels when larger,
    keeping the aspect ratio (the other side rounded half up, at least 1 pixel):
    (3024, 4032) -> (168, 224); (32, 32) -> (32, 32)."""
    longer = max(height, width)
    if longer <= limit:
        return (height, width)
    return tuple(max(1, (side * limit * 2 + longer) // (2 * longer)) for side in (height, width))


def auto_image_size(data):
    """(height, width) in pixels a data set trains at without --image_size: its native size
    (image_shape: a folder's most common train image size, most_common_size), capped at
    MAX_AUTO_SIZE (capped_size).
    Raises: UserError: a TFDS set whose images have no fixed size (pass --image_size)."""
    h, w = data.image_shape[:2]
    if h is None or w is None:
        raise UserError(f"--dataset={data.name}: images have no fixed size; pass --image_size")
    return capped_size(int(h), int(w))


def resolve_image_size(data, image_size):
    """(height, width) in pixels to train at.

    Args:
      image_size: --image_size (int: a square), a size config.json recorded (int, or
        [height, width] for a non-square one: size_setting), or None: auto_image_size.
    Raises: UserError: None for a TFDS set of varying image sizes (auto_image_size).
    """
    if image_size:
        if isinstance(image_size, (list, tuple)):
            return (int(image_size[0]), int(image_size[1]))
        return (int(image_size), int(image_size))
    return auto_image_size(data)


def size_setting(size):
    """What config.json records as image_size for a resolved (height, width): an int for a
    square (as --image_size takes it), else [height, width]."""
    h, w = (int(v) for v in size)
    return h if h == w else [h, w]


def image_size_source(data, size, given=None):
    """Where the input size comes from, in words and figures: the first line of tftool-train
    and the model card.

    Args:
      data: the Dataset; size: the resolved (height, width) in pixels.
      given: whether --image_size chose it; None: whenever it differs from auto_image_size
        (the model card sees only the size config.json recorded).
    Returns:
      {"size": [h, w], "source": "--image_size", "most common train size" or "native",
       "native": [h, w] (a folder's most common train size; None for varying TFDS images),
       "train_images": int, "capped_at": MAX_AUTO_SIZE when the cap changed the size else None,
       "resized": images (all splits) of another size than `size`, resized RESIZE_METHOD
       (None: unknown), "resize": RESIZE_METHOD, "text": a phrase such as "32x32 (the most
       common size of 900 train images; 12 images of other sizes, in all splits, are resized
       bilinear, antialiased)"}.
    """
    size = tuple(int(v) for v in size)
    h, w = data.image_shape[:2]
    native = None if h is None or w is None else (int(h), int(w))
    auto = capped_size(*native) if native else None
    given = size != auto if given is None else bool(given)
    total = data.num_train + data.num_validation + data.num_test
    if data.image_sizes:
        counts = collections.Counter()
        for split_counts in data.image_sizes.values():
            counts.update(split_counts)
        resized = total - counts.get(size, 0)
    else:
        resized = None if native is None else (0 if native == size else total)
    capped = not given and auto != native

    def shown(hw):
        return f"{hw[0]}x{hw[1]}"

    if given:
        source = "--image_size"
        why = ("--image_size" + (f"; the most common train size is {shown(native)}"
                                 if data.image_sizes else
                                 f"; the data set's images are {shown(native)}" if native
                                 else ""))
    elif data.image_sizes:
        source = "most common train size"
        why = f"the most common size of {data.num_train} train images"
    else:
        source = "native"
        why = "the data set's native size"
    if capped:
        why += f", {shown(native)}, with its longer side capped at {MAX_AUTO_SIZE}"
    if resized is None:
        why += f"; the images vary in size and are resized {RESIZE_METHOD}"
    elif resized == 0:
        why += "; no image is resized"
    elif resized == total:
        why += f"; all {total} images are resized {RESIZE_METHOD}"
    else:
        why += (f"; {resized} images of other sizes, in all splits, are resized "
                f"{RESIZE_METHOD}")
    orientation = "height x width; " if size[0] != size[1] else ""
    return {"size": list(size), "source": source, "native": list(native) if native else None,
            "train_images": data.num_train, "capped_at": MAX_AUTO_SIZE if capped else None,
            "resized": resized, "resize": RESIZE_METHOD,
            "text": f"{shown(size)} ({orientation}{why})"}
