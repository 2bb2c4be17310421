"""Training throughput: tftool's fit (train/fit.py, every callback of a real stage) against a
plain `model.fit` on the same images held as numpy, side by side in one run (issue 10).

  PYTHONPATH=. python benchmarks/train_throughput.py --dataset=folder:PATH [--epochs=5]

For each model (small_cnn at the native size; mobilenet_v2 alpha 0.35 at 96 px) both sides
train the same architecture from the same seed with batch 64, Adam, a constant learning rate
and no augmentation. Images/s is wall-clock over the steady epochs (2..E: the first epoch
traces the graph and fills caches), from one epoch end to the next, so it includes all
per-epoch work (callbacks, checkpoints, shuffle-buffer refills); images per CPU-second (this
process's threads) is printed beside it, as it hardly moves with a shared machine's load.
The two sides alternate
(tftool, plain, tftool, plain) and each figure is the better of its two runs, so a busy
shared machine hurts both alike. Goal (issue 10): ≥ 1.3× plain Keras for small_cnn, ≥ 1.0×
for mobilenet_v2.
"""
import argparse
import tempfile
import time

import tftool  # noqa: F401
from tftool import data, models
from tftool.train import fit, strategy as strategy_lib

import numpy as np
import tf_keras as keras


class EpochClock(keras.callbacks.Callback):
    """Wall-clock and process CPU time (all threads) at each epoch end, seconds."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((time.perf_counter(), time.process_time()))


def steady_ips(clock, images_per_epoch):
    """(images per wall-clock second, images per CPU second) over epochs 2..E. On a shared
    machine the wall-clock figure moves with the neighbours' load; the CPU figure (work per
    image, all of this process's threads) hardly does, so the ratios of both are printed."""
    (w0, c0), (w1, c1) = clock.ends[0], clock.ends[-1]
    images = images_per_epoch * (len(clock.ends) - 1)
    return images / (w1 - w0), images / (c1 - c0)


def as_numpy(dataset, image_size):
    """The whole train split as float32 [N, H, W, C] in [0, 1] and int64 [N] (plain Keras's
    side: what a user's `model.fit(x, y)` holds in memory)."""
    images, labels = [], []
    for x, y in dataset.train.batch(256).as_numpy_iterator():
        images.append(data.preprocess(x, image_size).numpy())
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# tftool settings tried beside the default: Keras's steps_per_execution and XLA.
VARIANTS = {"default": {}, "steps_per_execution=8": {"steps_per_execution": 8},
            "jit_compile": {"jit_compile": True}}


def run_tftool(strategy, build, dataset, size, epochs, batch, **options):
    config = fit.TrainConfig(epochs=epochs, per_replica_batch_size=batch, learning_rate=1e-3,
                             lr_schedule="constant", augment=False, **options)
    clock = EpochClock()
    fit.train(strategy, build, dataset, size, config, tempfile.mkdtemp(prefix="tput_"), [clock])
    return steady_ips(clock, fit.steps_per_epoch_of(dataset.num_train, config, 1) * batch)


def run_plain(build, x, y, epochs, batch):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    clock = EpochClock()
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, callbacks=[clock], verbose=0)
    return steady_ips(clock, len(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", default="small_cnn,mobilenet_v2")
    parser.add_argument("--mobilenet_epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--variants", default="default",
                        help=f"tftool settings to time: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    strategy = strategy_lib.build("auto", None, 1)
    rows = []
    for name in args.models.split(","):
        channels = 3 if name == "mobilenet_v2" else 1
        dataset = data.load(args.dataset, channels=channels)
        size = (96, 96) if name == "mobilenet_v2" else tuple(dataset.image_shape[:2])
        epochs = args.mobilenet_epochs if name == "mobilenet_v2" else args.epochs
        kwargs = {"alpha": 0.35} if name == "mobilenet_v2" else {"width": 32}

        def build(name=name, size=size, kwargs=kwargs, k=dataset.num_classes):
            return models.build(name, size + (channels,), k, **kwargs)

        x, y = as_numpy(dataset, size)
        ours = {v: [] for v in args.variants.split(",")}
        plain = []
        for _ in range(2):
            for variant in ours:
                ours[variant].append(run_tftool(strategy, build, dataset, size, epochs,
                                                args.batch, **VARIANTS[variant]))
                print(f"{name}: tftool ({variant}) {ours[variant][-1][0]:.0f} images/s, "
                      f"{ours[variant][-1][1]:.0f} images/CPU-s", flush=True)
            plain.append(run_plain(build, x, y, epochs, args.batch))
            print(f"{name}: plain Keras {plain[-1][0]:.0f} images/s, {plain[-1][1]:.0f} "
                  f"images/CPU-s", flush=True)
        for variant, values in ours.items():
            rows.append((f"{name} ({variant})", size, epochs,
                         max(v[0] for v in values), max(v[0] for v in plain),
                         max(v[1] for v in values), max(v[1] for v in plain)))
        del x, y
    print(f"\n{dataset.num_train} train images, batch {args.batch}, no augmentation, constant "
          f"learning rate; steady epochs 2..E; best of 2 alternating runs each")
    print("| model | input | epochs | tftool images/s | plain model.fit images/s | ratio | "
          "tftool images/CPU-s | plain images/CPU-s | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, epochs, a, b, ca, cb in rows:
        print(f"| {name} | {size[0]}x{size[1]} | {epochs} | {a:,.0f} | {b:,.0f} | {a / b:.2f}× | "
              f"{ca:,.0f} | {cb:,.0f} | {ca / cb:.2f}× |")


if __name__ == "__main__":
    main()
