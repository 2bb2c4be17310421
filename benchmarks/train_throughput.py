"""Training throughput: tftool's fit (train/fit.py, every callback of a real stage) against a
plain `model.fit` on the same images held as numpy, side by side in one run.

  PYTHONPATH=. python benchmarks/train_throughput.py --dataset=folder:PATH [--epochs=5]

For each model (small_cnn at the native size; mobilenet_v2 alpha 0.35 at 96 px) both sides
train the same architecture from the same seed with batch 64, Adam, a constant learning rate
and no augmentation. Throughput is wall-clock per steady epoch (2..E: the first epoch traces
the graph and fills caches), from one epoch end to the next, so it includes all per-epoch
work (callbacks, checkpoints, shuffle-buffer refills). The sides alternate (tftool, plain,
tftool, plain, ...) `--repeats` times; each side's figure is images / its *median* steady
epoch over all its runs, with images / its best epoch beside it. On a shared machine whole
epochs run at half speed when a neighbour takes a core, which the median shrugs off and a
mean does not. Images per CPU-second (this process's threads, mean) is printed too.

Variants of tftool (--variants): "default" (tftool-train's defaults, --mixed_precision
unset: mixed_bfloat16 for small_cnn on a CPU with AVX512_BF16/AMX_BF16, float32 otherwise;
train/precision.py), "float32" (--nomixed_precision), "mixed_precision" (--mixed_precision:
mixed_bfloat16 on such a CPU, mixed_float16 on a GPU; refused elsewhere),
"steps_per_execution=8" and "jit_compile" (XLA). Each row names the policy it trained under.
Goal: ≥ 1.3× plain Keras for small_cnn, ≥ 1.0× for mobilenet_v2.
"""
import argparse
import statistics
import tempfile
import time

import tftool  # noqa: F401
from tftool import data, models
from tftool.train import fit, precision, strategy as strategy_lib

import numpy as np
import tf_keras as keras


class EpochClock(keras.callbacks.Callback):
    """Wall-clock and process CPU time (all threads) at each epoch end, seconds."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((time.perf_counter(), time.process_time()))


def steady_epochs(clock, images_per_epoch):
    """(wall seconds of each steady epoch 2..E, images per CPU-second over them). On a shared
    machine the wall-clock figure moves with the neighbours' load; the CPU figure (work per
    image, all of this process's threads) hardly does."""
    walls = [b[0] - a[0] for a, b in zip(clock.ends, clock.ends[1:])]
    cpu = clock.ends[-1][1] - clock.ends[0][1]
    return walls, images_per_epoch * len(walls) / cpu


def as_numpy(dataset, image_size):
    """The whole train split as float32 [N, H, W, C] in [0, 1] and int64 [N] (plain Keras's
    side: what a user's `model.fit(x, y)` holds in memory)."""
    images, labels = [], []
    for x, y in dataset.train.batch(256).as_numpy_iterator():
        images.append(data.preprocess(x, image_size).numpy())
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# tftool settings tried beside the default: its precision choices, Keras's
# steps_per_execution and XLA.
VARIANTS = {"default": {}, "float32": {"mixed_precision": False},
            "mixed_precision": {"mixed_precision": True},
            "steps_per_execution=8": {"steps_per_execution": 8},
            "jit_compile": {"jit_compile": True}}


def run_tftool(strategy, name, build, dataset, size, epochs, batch, mixed_precision=None,
               **options):
    """tftool's fit of model `name` under the policy tftool-train would set; returns
    (steady_epochs(...), the policy's name)."""
    config = fit.TrainConfig(epochs=epochs, per_replica_batch_size=batch, learning_rate=1e-3,
                             lr_schedule="constant", augment=False, **options)
    clock = EpochClock()
    # as tftool-train does before it builds the model
    with precision.policy_for_training(mixed_precision, name) as policy:
        fit.train(strategy, build, dataset, size, config, tempfile.mkdtemp(prefix="tput_"),
                  [clock])
    images = fit.steps_per_epoch_of(dataset.num_train, config, 1) * batch
    return steady_epochs(clock, images), policy


def run_plain(build, x, y, epochs, batch):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    clock = EpochClock()
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, callbacks=[clock], verbose=0)
    return steady_epochs(clock, len(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", default="small_cnn,mobilenet_v2")
    parser.add_argument("--mobilenet_epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--variants", default="default,float32",
                        help=f"tftool settings to time: {', '.join(VARIANTS)} (mixed_precision "
                             f"is left out where the machine has no 16-bit fast path)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    strategy = strategy_lib.build("auto", None, 1)
    variants = args.variants.split(",")
    if "mixed_precision" in variants:
        try:
            print(f"--mixed_precision here: {precision.policy_for_this_machine()}")
        except tftool.UserError as e:
            print(f"left out mixed_precision: {e}")
            variants.remove("mixed_precision")
    rows = []
    for name in args.models.split(","):
        channels = 3 if name == "mobilenet_v2" else 1
        dataset = data.load(args.dataset, channels=channels)
        size = (96, 96) if name == "mobilenet_v2" else tuple(dataset.image_shape[:2])
        epochs = args.mobilenet_epochs if name == "mobilenet_v2" else args.epochs
        kwargs = {"alpha": 0.35} if name == "mobilenet_v2" else {"width": 32}
        images = fit.steps_per_epoch_of(dataset.num_train, fit.TrainConfig(
            epochs=1, learning_rate=1e-3, lr_schedule="constant",
            per_replica_batch_size=args.batch), 1) * args.batch

        def build(name=name, size=size, kwargs=kwargs, k=dataset.num_classes):
            return models.build(name, size + (channels,), k, **kwargs)

        x, y = as_numpy(dataset, size)
        runs = {v: [] for v in variants + ["plain"]}
        policies = {}
        for _ in range(args.repeats):
            for variant in runs:
                if variant == "plain":
                    runs[variant].append(run_plain(build, x, y, epochs, args.batch))
                else:
                    result, policies[variant] = run_tftool(
                        strategy, name, build, dataset, size, epochs, args.batch,
                        **VARIANTS[variant])
                    runs[variant].append(result)
                walls, per_cpu = runs[variant][-1]
                print(f"{name}: {variant}: steady epochs {', '.join(f'{w:.1f}' for w in walls)}"
                      f" s; {per_cpu:.0f} images/CPU-s", flush=True)

        def summary(variant, per_epoch):
            walls = [w for ws, _ in runs[variant] for w in ws]
            return (per_epoch / statistics.median(walls), per_epoch / min(walls),
                    statistics.mean(c for _, c in runs[variant]))
        # plain Keras's numpy epochs hold every image; tftool's drop the last partial batch
        plain = summary("plain", len(x))
        for variant in variants:
            rows.append((f"{name} ({variant}: {policies[variant]})", size, epochs,
                         summary(variant, images), plain))
        del x, y
    print(f"\n{dataset.num_train} train images, batch {args.batch}, no augmentation, constant "
          f"learning rate; steady epochs 2..E of {args.repeats} alternating runs per side")
    print("| model (tftool setting) | input | epochs | tftool images/s (median epoch) | plain "
          "model.fit images/s | ratio | best epoch: tftool / plain | ratio | tftool "
          "images/CPU-s | plain images/CPU-s | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, epochs, (a, best_a, ca), (b, best_b, cb) in rows:
        print(f"| {name} | {size[0]}x{size[1]} | {epochs} | {a:,.0f} | {b:,.0f} | {a / b:.2f}× "
              f"| {best_a:,.0f} / {best_b:,.0f} | {best_a / best_b:.2f}× | {ca:,.0f} | "
              f"{cb:,.0f} | {ca / cb:.2f}× |")


if __name__ == "__main__":
    main()
