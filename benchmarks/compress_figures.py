"""Measured figures of the compression transforms on digits (8x8, 10 classes).

    PYTHONPATH=. python benchmarks/compress_figures.py [--width=8] [--seed=0]

Trains small_cnn (float), then from it: int8; clustered (16 clusters, per-layer, linear
centroids, BN folded first) int8 with per-tensor weights (the clustered_int8 export), the same
with per-channel weights, with kmeans++ centroids, and with 8 clusters; CQAT int8; pruned 0.8
-> sparsity-preserving clustering -> PCQAT int8; 2:4-pruned int8; int16x8; and selective int8
on a copy of the float model with an activation-range outlier. Prints one row per variant:
TFLite accuracy on the test split (digits: 359 images, 1 point = 3.6 images), bytes, gzip
bytes, and what the variant promises (sparsity, distinct values per output channel and per
kernel, 2:4 pattern). CPU only, ~4 minutes on 2 shared cores for digits; not a test.

Measured (2026-11-21, seed 0, width 32, digits; gz/int8 = gzip bytes over plain int8's;
one repeated training pipeline; seeds 1 and 2 are in README's table):
  variant                    acc    Δfloat  gz/int8  values per kernel (first conv skipped)
  float32                    0.9916         3.687
  int8                       0.9916 +0.0000 1.000
  int16x8                    0.9889 -0.0028 1.028
  clustered_int8 (16)        0.9861 -0.0056 0.512    153 16 16 16 16
  clustered_int8_per_channel 0.9861 -0.0056 0.628    152 78 87 80 53
  clustered_kmeans++_int8    0.9916 +0.0000 0.624    151 16 16 16 16
  clustered8_int8 (8)        0.9889 -0.0028 0.374    149 8 8 8 8
  cqat_int8 (16)             0.9861 -0.0056 0.507    152 16 16 16 16
  pcqat_int8 (0.8, 16)       0.9916 +0.0000 0.284    156 16 15 16 219; sparsity 0.80 0.80 0.80
  pruned_2by4_int8           0.9916 +0.0000 0.759    (2:4 in every pruned kernel)
  outlier_int8               0.1031 -0.8886
  outlier_selective_int8     0.9916 +0.0000          (3 layers float)
From seed to seed a row moves by a test image or two; compare variants within one run.

The same on a real 28x28 folder (--dataset=folder:PATH --float_epochs=8, PATH made by
benchmarks/image_folder.py digits PATH --size=28 --copies=5: 7,190 train / 359 test; small_cnn
has 3 stages there; measured before the repeated pipeline):
  variant                    acc    Δfloat  gz/int8  values per kernel (first conv skipped)
  float32                    0.9944         3.885
  int8                       0.9944 +0.0000 1.000
  int16x8                    0.9944 +0.0000 1.015
  clustered_int8 (16)        0.9916 -0.0028 0.464    16 in each of the 6 kernels
  clustered_int8_per_channel 0.9916 -0.0028 0.568    60-89
  clustered_kmeans++_int8    0.9916 -0.0028 0.588    16
  clustered8_int8 (8)        0.9916 -0.0028 0.313    8
  cqat_int8 (16)             0.9916 -0.0028 0.463    16
  pcqat_int8 (0.8, 16)       0.9972 +0.0028 0.248    15-16 (logits skipped); sparsity 0.80
  pruned_2by4_int8           0.9944 +0.0000 0.749    (2:4 in every pruned kernel)
  outlier_int8               0.1003 -0.8942
  outlier_selective_int8     0.9944 +0.0000          (3 layers float: conv2_1+bn2_1+relu2_1,
                                                      gap, logits)
"""
import argparse
import gzip
import os
import sys
import tempfile
import time

import tftool  # noqa: F401  (Keras 2 before TensorFlow)

import numpy as np
import tensorflow as tf

from tftool import data, models

# The int8-breaking model of the tests (one definition for tests and figures).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
from test_debug import with_activation_outlier  # noqa: E402
from tftool.benchmark import sparsity
from tftool.export import convert, debug
from tftool.litert import Runner, to_pixels
from tftool.optimize import cluster, prune, qat
from tftool.train import fit as trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--dataset", default="digits",
                        help="digits, or folder:PATH (e.g. a 28x28 folder made by "
                             "benchmarks/image_folder.py digits PATH --size=28 --copies=5)")
    parser.add_argument("--float_epochs", type=int, default=30)
    args = parser.parse_args()

    digits = data.load(args.dataset, data_dir=args.data_dir, channels=1)
    size = tuple(digits.image_shape[:2])
    x, y = data.test_arrays(digits, size)
    rep = data.representative_dataset(digits, size, 100)
    strategy = tf.distribute.get_strategy()

    def fit(model_fn, epochs, lr, callbacks=()):
        config = trainer.TrainConfig(epochs=epochs, per_replica_batch_size=64, learning_rate=lr,
                                     lr_schedule="cosine", augment=False, seed=args.seed)
        model, _ = trainer.train(strategy, model_fn, digits, size, config,
                                 tempfile.mkdtemp(), extra_callbacks=callbacks)
        return model

    def keras_accuracy(model):
        return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))

    def tfl_accuracy(content):
        return float(np.mean(np.argmax(Runner(model_content=content)(to_pixels(x)), -1) == y))

    rows = []

    def row(name, content, **extra):
        patterns = sparsity.kernel_patterns(model_content=content)
        kernels = sparsity.kernel_sparsity(model_content=content)
        rows.append(dict(variant=name, accuracy=tfl_accuracy(content), bytes=len(content),
                         gzip=len(gzip.compress(content, 9)), patterns=patterns,
                         kernels=kernels, **extra))
        return rows[-1]

    start = time.time()
    float_model = fit(lambda: models.build("small_cnn", size + (1,), digits.num_classes,
                                           width=args.width), args.float_epochs, 5e-3)
    float_acc = keras_accuracy(float_model)
    row("float32", convert.to_tflite(float_model, "float32"))
    base = row("int8", convert.to_tflite(float_model, "int8", rep))
    row("int16x8", convert.to_tflite(float_model, "int16x8", rep))

    # Clustering: tfmot's guide fine-tunes with a learning rate well below the float run's.
    clustered = cluster.strip(fit(lambda: cluster.apply(float_model, 16), 8, 1e-3))
    row("clustered_int8", convert.to_tflite(clustered, "int8_per_tensor", rep),
        keras_unique=cluster.unique_values(clustered))
    row("clustered_int8_per_channel", convert.to_tflite(clustered, "int8", rep))
    kmeans = cluster.strip(fit(lambda: cluster.apply(float_model, 16, "kmeans_plus_plus"), 8,
                               1e-3))
    row("clustered_kmeans++_int8", convert.to_tflite(kmeans, "int8_per_tensor", rep))
    clustered8 = cluster.strip(fit(lambda: cluster.apply(float_model, 8), 8, 1e-3))
    row("clustered8_int8", convert.to_tflite(clustered8, "int8_per_tensor", rep))
    # CQAT and PCQAT fine-tune as tftool-quantize does by default: 3 epochs from 1e-4, cosine.
    cqat = fit(lambda: qat.apply(clustered, "cluster_preserve"), 3, 1e-4)
    row("cqat_int8", convert.to_tflite(cqat, "qat_int8"))

    # Prune -> cluster (sparsity kept) -> PCQAT.
    steps = (digits.num_train // 64) * 8
    pruned = prune.strip(fit(lambda: prune.apply(float_model, prune.schedule_steps(steps, 0.0,
                                                                                    0.8)),
                             8, 1e-3, [tfmot_step()]))
    pc = cluster.strip(fit(lambda: cluster.apply(pruned, 16, preserve_sparsity=True,
                                                 skip=prune.DEFAULT_SKIP), 6, 1e-3))
    pcqat = fit(lambda: qat.apply(pc, "cluster_prune_preserve"), 3, 1e-4)
    row("pcqat_int8", convert.to_tflite(pcqat, "qat_int8"),
        pruned_layers=prune.select_layers(float_model))

    # 2:4 structured pruning: tfmot fixes the mask at the first step, then fine-tunes.
    two_four = prune.strip(fit(lambda: prune.apply(float_model, None,
                                                   sparsity_m_by_n=(2, 4)),
                               8, 1e-3, [tfmot_step()]))
    row("pruned_2by4_int8", convert.to_tflite(two_four, "int8", rep),
        pruned_layers=prune.select_layers(float_model))

    # Selective int8 on a model built to break int8 (see tests/test_debug.py).
    broken = with_activation_outlier(float_model)
    broken_int8 = row("outlier_int8", convert.to_tflite(broken, "int8", rep))
    try:
        content, kept = debug.selective_int8(
            broken, rep, lambda c: tfl_accuracy(c) >= float_acc - 0.01, budget=3)
        row("outlier_selective_int8", content,
            kept=[f"{r['op']}({'+'.join(r['layers'])})" for r in kept])
    except tftool.UserError as e:  # the budget of 3 float layers was not enough
        print(f"outlier_selective_int8: refused: {e}")

    print(f"small_cnn width {args.width}, {args.dataset} {size[0]}x{size[1]}, float Keras "
          f"accuracy {float_acc:.4f}, "
          f"{time.time() - start:.0f} s")
    print(f"{'variant':24s} {'acc':>6s} {'Δfloat':>7s} {'bytes':>7s} {'gzip':>6s} "
          f"{'gz/int8':>7s}  notes")
    for r in rows:
        notes = []
        pruned_set = r.get("pruned_layers")
        if pruned_set is not None:
            sp = [k["zeros"] / k["size"] for k in r["kernels"]]
            # Kernels in op order: the skipped first conv and logits are the ends.
            notes.append("sparsity " + " ".join(f"{s:.2f}" for s in sp))
        if r["variant"].startswith(("clustered", "cqat", "pcqat")):
            notes.append("unique/channel " + " ".join(str(p["unique_per_channel"])
                                                      for p in r["patterns"]))
            notes.append("unique/kernel " + " ".join(str(p["unique"]) for p in r["patterns"]))
        if r["variant"] == "pruned_2by4_int8":
            notes.append("2:4 " + " ".join({True: "y", False: "n", None: "-"}[p["m_by_n"]]
                                           for p in r["patterns"]))
        if "kept" in r:
            notes.append("kept float: " + ", ".join(r["kept"]))
        print(f"{r['variant']:24s} {r['accuracy']:6.4f} {r['accuracy'] - float_acc:+7.4f} "
              f"{r['bytes']:7d} {r['gzip']:6d} {r['gzip'] / base['gzip']:7.3f}  "
              f"{'; '.join(notes)}")
    broken_float = keras_accuracy(broken)
    print(f"outlier model: Keras float {broken_float:.4f}, plain int8 "
          f"{broken_int8['accuracy']:.4f}")
    return 0


def tfmot_step():
    import tensorflow_model_optimization as tfmot
    return tfmot.sparsity.keras.UpdatePruningStep()


if __name__ == "__main__":
    sys.exit(main())
