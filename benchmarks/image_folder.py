"""Writes image folders in tftool's folder:PATH layout (PATH/{train,test}/<class>/*.png) for the
benchmarks and the mobilenet_v2 folder recipe.

  python benchmarks/image_folder.py digits OUT [--size=32] [--copies=3]
  python benchmarks/image_folder.py random OUT --num_images=1000 [--size=160]

digits: scikit-learn's 1,797 UCI handwritten digits (8x8, 0..16), upscaled (bicubic) to
SIZExSIZE RGB PNGs, split 80/20 with tftool's own stratified split (tftool/data/digits.py).
Each train image is written `copies` times, shifted by 0, +1, -1, ... source pixels
horizontally, so the train split holds copies × 1,438 real-looking images (3 copies: 4,314);
the test split holds the 359 unshifted test digits once.
random: `num_images` uniform-noise RGB PNGs in 10 classes, 90% train / 10% test: a folder of
a given size and resolution for memory measurements, not for accuracy.
"""
import argparse
import os

import numpy as np
from PIL import Image


def _write(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def digits_folder(root, size=32, copies=3):
    """Writes the digits folder (see module docstring); returns (num_train, num_test)."""
    from sklearn.datasets import load_digits

    import tftool  # noqa: F401
    from tftool.data.digits import split_indices

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)  # [1797, 8, 8]
    train_idx, test_idx = split_indices(len(images), d.target)
    shifts = [0, 1, -1, 2, -2][:copies]
    counts = {"train": 0, "test": 0}
    for split, idx, split_shifts in (("train", train_idx, shifts), ("test", test_idx, [0])):
        for i in idx:
            for s in split_shifts:
                small = np.roll(images[i], s, axis=1)
                if s > 0:
                    small[:, :s] = 0
                elif s < 0:
                    small[:, s:] = 0
                big = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))
                rgb = np.stack([big] * 3, -1)
                _write(os.path.join(root, split, str(d.target[i]), f"{i:04d}_{s:+d}.png"), rgb)
                counts[split] += 1
    return counts["train"], counts["test"]


def random_folder(root, num_images, size=160, num_classes=10, seed=0):
    """Writes `num_images` noise RGB PNGs of SIZExSIZE px (90% train); returns the count."""
    rng = np.random.default_rng(seed)
    num_test = max(num_classes, num_images // 10)
    for i in range(num_images):
        split = "test" if i < num_test else "train"
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        _write(os.path.join(root, split, f"c{i % num_classes}", f"{i:05d}.png"), pixels)
    return num_images


def main():
    from tftool import quiet

    quiet.filter_stderr()  # TensorFlow's start-up lines (tftool.data imports it) stay hidden
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["digits", "random"])
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--num_images", type=int, default=1000)
    args = parser.parse_args()
    if args.kind == "digits":
        print(digits_folder(args.out, args.size or 32, args.copies))
    else:
        print(random_folder(args.out, args.num_images, args.size or 160))


if __name__ == "__main__":
    main()
