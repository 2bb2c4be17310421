"""tftool-predict --model=M.tflite [--top_k=5] [--json] IMAGE...: top-k labels of images.

Image paths are positional, so this has its own wrapper instead of common.run (which refuses
positional arguments); errors are still one line and exit status 2."""
import json
import sys

import tftool  # noqa: F401  (before absl/TF imports, as everywhere)
from tftool import UserError

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .tflite exported by tftool (metadata inside).")
flags.DEFINE_integer("top_k", 5, "Classes to show per image (≥ 1).")
flags.DEFINE_boolean("json", False, "Print JSON instead of one line per image.")
flags.DEFINE_integer("num_threads", None, "LiteRT CPU threads (default: the runtime's).")


def main(argv):
    from tftool import classify

    if not FLAGS.model:
        raise UserError("--model=PATH.tflite is required")
    results = classify.classify(FLAGS.model, argv[1:], FLAGS.top_k, FLAGS.num_threads)
    if FLAGS.json:
        print(json.dumps(results, indent=2))
    for r in [] if FLAGS.json else results:
        print(r["image"] + ": " + ", ".join(
            f"{c['label']} {c['probability']:.3f}" for c in r["top_k"]))


def cli_main():
    def wrapped(argv):
        try:
            return main(argv)
        except UserError as e:
            print(f"tftool-predict: error: {e}", file=sys.stderr)
            sys.exit(2)
    app.run(wrapped)
