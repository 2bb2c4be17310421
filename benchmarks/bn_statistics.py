"""Measures what fixes MobileNetV2's BatchNormalization statistics on a short run.

  PYTHONPATH=. python benchmarks/bn_statistics.py --dataset=folder:PATH [--epochs=2]

Trains mobilenet_v2 (alpha 0.35, 96 px, 3 channels, tftool-train's default schedule) once per
BN momentum choice — keras.applications' 0.999, and "from steps": 1 − 10 / total steps
clipped to [0.9, 0.999] (the initial statistics keep e^-10 of their weight by the end) — and
prints test accuracy as trained, then after re-estimating the BN statistics over N training
batches (train/batchnorm.py), for several N, each from the same trained weights.
"""
import argparse
import tempfile
import time

import tftool  # noqa: F401
from tftool import data, evaluate, models
from tftool.train import batchnorm, fit, strategy as strategy_lib

import tf_keras as keras


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batches", default="5,20,100")
    args = parser.parse_args()
    dataset = data.load(args.dataset, channels=3)
    size = (args.image_size, args.image_size)
    config = fit.TrainConfig(epochs=args.epochs, learning_rate=3e-3, lr_schedule="cosine_warmup",
                             warmup_epochs=min(1.0, args.epochs / 2))
    steps = fit.steps_per_epoch_of(dataset.num_train, config, 1) * args.epochs
    strategy = strategy_lib.build("auto", None, 1)
    rows = []
    for label, momentum in (("0.999 (keras.applications)", None),
                            ("from steps", min(0.999, max(0.9, 1 - 10 / steps)))):
        def build():
            model = models.mobilenet_v2(size + (3,), dataset.num_classes, alpha=args.alpha)
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization) and momentum:
                    layer.momentum = momentum
            return model
        start = time.perf_counter()
        model, history = fit.train(strategy, build, dataset, size, config,
                                   tempfile.mkdtemp(prefix="bnstat_"))
        train_s = time.perf_counter() - start
        weights = model.get_weights()
        shown = f"{label} = {momentum:.4f}" if momentum else label
        acc = evaluate.keras_metrics(model, dataset, size, splits=("test",))["test_accuracy"]
        rows.append((shown, "none (as trained)", history["accuracy"][-1], acc, train_s, 0.0))
        for n in [int(b) for b in args.batches.split(",")]:
            model.set_weights(weights)
            n = min(n, steps // args.epochs)
            start = time.perf_counter()
            batchnorm.reestimate(model, data.pipeline(
                dataset.train, size, 64, training=True, seed=0, num_examples=dataset.num_train),
                n)
            seconds = time.perf_counter() - start
            acc = evaluate.keras_metrics(model, dataset, size, splits=("test",))["test_accuracy"]
            rows.append((shown, f"re-estimated, {n} batches of 64", history["accuracy"][-1],
                         acc, train_s, seconds))
    print(f"\nmobilenet_v2 alpha {args.alpha}, {args.image_size} px, {args.epochs} epochs = "
          f"{steps} steps, {dataset.num_train} train / {dataset.num_test} test images")
    print("| BN momentum | moving statistics | train acc (last epoch) | test acc | train s | "
          "re-estimation s |")
    print("|---|---|---|---|---|---|")
    for m, how, tr, te, ts, rs in rows:
        print(f"| {m} | {how} | {tr:.3f} | {te:.3f} | {ts:.0f} | {rs:.1f} |")


if __name__ == "__main__":
    main()
