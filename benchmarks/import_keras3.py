"""A Keras 3 model trained outside tftool, brought in with `tftool-import` and shipped.

Usage (from the repo root; the data: `tar -xf ../shared/data/cifar10-dev.tar -C /tmp`):
  PYTHONPATH=. .venv/bin/python benchmarks/import_keras3.py --data=/tmp/cifar10-dev \
      --root=/tmp/import_keras3 --epochs=20

What a user does, step by step, each step a command:
  1. trains a Keras 3 CNN (Rescaling, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU/ReLU6,
     Add, pooling, Dropout, Dense softmax; RandomFlip + RandomTranslation inside the model)
     on DATA/train with keras.utils.image_dataset_from_directory, as Keras's own guides do,
     and saves ROOT/keras3_cnn.keras (cached: an existing file is reused);
  2. `tftool-import --keras_model=ROOT/keras3_cnn.keras --dataset=folder:DATA`;
  3. `make quantize export micro WORKDIR=ROOT/work EXPORT_DIR=ROOT/exported DATASET=...`.
It prints the original model's test accuracy as Keras 3 computes it on DATA/test, the import's
output difference, and each exported file's test accuracy with its paired 95% interval
against the imported float model (which is the original: same probabilities within 1e-5),
its size, and the micro footprint; the figures go to ROOT/summary.json.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, ".venv", "bin")


def train_keras3(data, path, epochs, seed):
    """Step 1, in a child process so Keras 3 is the only Keras it imports."""
    code = f"""
import keras, numpy as np
keras.utils.set_random_seed({seed})
train = keras.utils.image_dataset_from_directory({os.path.join(data, 'train')!r},
    image_size=(32, 32), batch_size=128, seed={seed})
inputs = keras.Input((32, 32, 3))
x = keras.layers.RandomFlip("horizontal")(inputs)
x = keras.layers.RandomTranslation(0.0625, 0.0625, fill_mode="reflect")(x)
x = keras.layers.Rescaling(1 / 255.0)(x)

def block(x, filters):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False)(y)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.Add()([x, y])
    return keras.layers.MaxPooling2D()(keras.layers.ReLU()(x))

for filters in (64, 128, 256):
    x = block(x, filters)
x = keras.layers.GlobalAveragePooling2D()(x)
x = keras.layers.Dropout(0.2)(x)
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
steps = {epochs} * len(train)
schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=3e-3,
                                                  warmup_steps=len(train))
model.compile(keras.optimizers.AdamW(schedule, weight_decay=5e-4),
              "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs={epochs}, verbose=2)
test = keras.utils.image_dataset_from_directory({os.path.join(data, 'test')!r},
    image_size=(32, 32), batch_size=256, shuffle=False)
print("KERAS3_TEST", model.evaluate(test, verbose=0)[1])
model.save({path!r})
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(BIN, "python"), "-c", code], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"training the Keras 3 model failed:\n{proc.stderr[-3000:]}")
    accuracy = float(next(line.split()[1] for line in proc.stdout.splitlines()
                          if line.startswith("KERAS3_TEST")))
    return accuracy, time.perf_counter() - start


def run(command, log):
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(command)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        sys.exit(f"failed (exit {proc.returncode}): {' '.join(command)}\n{proc.stderr[-3000:]}")
    return proc.stdout, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cifar10-dev")
    parser.add_argument("--root", default="/tmp/import_keras3")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.root, exist_ok=True)
    path = os.path.join(args.root, "keras3_cnn.keras")
    summary_path = os.path.join(args.root, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    if not os.path.exists(path):
        summary["keras3_test_accuracy"], summary["keras3_seconds"] = train_keras3(
            args.data, path, args.epochs, args.seed)
        summary.update(epochs=args.epochs, seed=args.seed, data=args.data)
        json.dump(summary, open(summary_path, "w"), indent=1)
    log = os.path.join(args.root, "commands.log")
    work, exported = os.path.join(args.root, "work"), os.path.join(args.root, "exported")
    out, seconds = run([os.path.join(BIN, "tftool-import"), f"--keras_model={path}",
                        f"--dataset=folder:{args.data}", f"--workdir={work}"], log)
    print(out, end="")
    summary["import_seconds"] = seconds
    make = ["make", f"WORKDIR={work}", f"EXPORT_DIR={exported}"]
    out, seconds = run([*make, "quantize"], log)
    summary["quantize_seconds"] = seconds
    out, _ = run([*make, "export", "EXPORT_FLAGS=--variants=float32,int8,qat_int8"], log)
    print(out, end="")
    out, _ = run([*make, "micro"], log)
    print(out, end="")
    metrics = json.load(open(os.path.join(work, "float", "metrics.json")))
    summary["imported"] = {k: metrics[k] for k in ("test_accuracy", "test_accuracy_interval",
                                                   "test_examples")}
    summary["imported"].update(max_output_difference=metrics["imported"][
        "max_output_difference"], input_range=metrics["imported"]["input_range"],
        augmentation_layers_removed=metrics["imported"]["augmentation_layers_removed"])
    summary["qat_keras_test_accuracy"] = json.load(open(os.path.join(
        work, "qat", "metrics.json")))["test_accuracy"]
    summary["exports"] = {}
    for card in sorted(glob.glob(os.path.join(exported, "*.json"))):
        content = json.load(open(card))
        if "variant" not in content:
            continue
        summary["exports"][content["variant"]] = {
            "test_accuracy": content["test_accuracy"],
            "test_accuracy_interval": content["test_accuracy_interval"],
            "drop_vs_float": content["accuracy_gate"]["drop"],
            "drop_interval": content["accuracy_gate"]["drop_interval"],
            "size_bytes": os.path.getsize(os.path.join(exported, content["file"]))}
    summary["micro_log"] = out.strip().splitlines()[-6:]
    json.dump(summary, open(summary_path, "w"), indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
