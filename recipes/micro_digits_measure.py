"""Measures the figures quoted in recipes/micro_digits.sh, with tftool.export.micro directly.

  python recipes/micro_digits_measure.py WORKDIR [DATA_DIR]

Reads WORKDIR/float/model.h5 (from `tftool-train --width=8`), converts it to full-integer int8
with convert.to_tflite (100 calibration images from the train split, 1 channel as digits has),
and prints one JSON object: the footprint row (flash, arena, ops), TFLM-vs-LiteRT agreement and
both runtimes' accuracy on the whole digits test split (359 images).
"""
import json
import os
import sys

import tftool  # noqa: F401  (Keras 2 before TensorFlow)
from tftool import data, io
from tftool.export import convert, micro


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    workdir, data_dir = argv[1], (argv[2] if len(argv) == 3 else None)
    digits = data.load("digits", data_dir=data_dir)
    image_size = digits.image_shape[:2]
    # WORKDIR/<stage>/model.h5 is the documented layout (DESIGN.md); spelt out, not taken from a
    # helper, so the script does not follow where that helper lives.
    model = io.load_model(os.path.join(workdir, "float", "model.h5"))
    content = convert.to_tflite(model, "int8",
                                representative_dataset=data.representative_dataset(digits,
                                                                                    image_size))
    images, labels = data.test_arrays(digits, image_size)
    row = micro.footprint(content, name="digits_int8")
    row.update(micro.compare_with_litert(content, images, labels))
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main(sys.argv)
