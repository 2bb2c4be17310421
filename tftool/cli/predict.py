"""Classifies image files with an exported .tflite: `tftool-predict` / `python -m tftool predict`.

Example: tftool-predict --tflite=exported/digits_small_cnn_int8.tflite a.png b.jpg photos/
Labels, input size, channels and normalization come from the file's own metadata
(tftool/classify.py); prints the top-k classes with probabilities, or JSON with --json.
Folders are searched recursively for images. Every readable image is classified; each one
that is not (not an image, missing) gets its own error line on stderr, and the exit status is
2 when any failed.
"""
import json
import sys

from tftool import UserError
from tftool.cli import run as cli_run

from absl import flags

FLAGS = flags.FLAGS
NAMES = ("tflite", "top_k", "json", "num_threads")


def main(argv):
    from tftool import classify

    if not FLAGS.tflite:
        raise UserError("--tflite=PATH.tflite is required (an export of tftool-export)")
    if len(argv) < 2:
        raise UserError("no image given; pass image files after the flags")
    results = classify.classify(FLAGS.tflite, argv[1:], FLAGS.top_k, FLAGS.num_threads)
    failed = [r for r in results if "error" in r]
    if FLAGS.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" not in r:
                print(r["image"] + ": " + ", ".join(
                    f"{c['label']} {c['probability']:.3f}" for c in r["top_k"]), flush=True)
    for r in failed:
        print(f"tftool-predict: error: {r['image']}: {r['error']}", file=sys.stderr, flush=True)
    if failed:
        sys.exit(2)


def cli_main():
    cli_run.entry_point("tftool-predict", NAMES, main, positional=True)
