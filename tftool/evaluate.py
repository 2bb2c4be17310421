"""One evaluation for Keras and TFLite models alike, streamed over the test split.

The trainer (stage metrics), export's accuracy gate and the benchmark all call `evaluate`:
the test split is read in batches of uint8 pixels (what an app feeds: data.test_batches) and
every model scores each batch before the next is read, so memory does not grow with the
number of test images (ImageNet's 50,000 224-px validation images are 7.5 GB as uint8 and
30 GB as float32; here one batch is held at a time).

Models are "scorers": callables uint8 [n, H, W, C] pixels -> float32 [n, K] class
probabilities. `keras_scorer` and `tflite_scorer` adapt the two kinds; a model that outputs
logits is passed through a softmax, so every comparison is of like with like (an export that
ends in softmax against the Keras model that ends in logits).
"""
import numpy as np

from tftool import stats

# The key of evaluate()'s per-image correctness (bool [n] numpy array, in split order). It is
# what paired comparisons (stats.paired_drop) read; it is not JSON: `json_safe` drops it.
CORRECT = "correct"


def json_safe(result):
    """An evaluate() result without its per-image arrays (for metrics.json, rows, cards)."""
    return {k: v for k, v in result.items() if k != CORRECT}


def softmax(logits):
    """float [n, K] logits -> float32 [n, K] probabilities (numerically stable)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def keras_scorer(model, outputs="logits"):
    """A scorer for a tf_keras model taking float32 [n, H, W, C] in [0, 1].

    The pixels are scaled by 1/255, as the training pipeline does. Direct calls, not
    model.predict: under MultiWorkerMirroredStrategy predict would shard the split across
    workers; here every worker scores the whole split identically.
    Args: outputs: "logits" (softmax applied here) or "probabilities".
    """
    def score(pixels):
        out = model(np.asarray(pixels, np.float32) / 255.0, training=False).numpy()
        return softmax(out) if outputs == "logits" else out.astype(np.float32)
    return score


def tflite_scorer(runner):
    """A scorer for a litert.Runner: it feeds the pixels as the model's own input tensor
    asks (uint8 as is, int8 quantized, float32 scaled to [0, 1]); logits are softmaxed."""
    def score(pixels):
        out = runner(np.asarray(pixels, np.uint8))
        return out if runner.outputs_probabilities else softmax(out)
    return score


class _Tally:
    """Running sums for one model over the batches seen so far."""

    def __init__(self, num_classes):
        self.n = 0
        self.correct = 0
        self.nll = 0.0
        self.agree = 0
        self.abs_dprob = 0.0
        self.class_correct = np.zeros(num_classes, np.int64)
        self.class_total = np.zeros(num_classes, np.int64)
        self.correct_images = []  # bool [n] per batch: the paired comparisons need them

    def add(self, probs, labels, reference):
        predictions = np.argmax(probs, -1)
        self.n += len(labels)
        self.correct += int(np.sum(predictions == labels))
        self.correct_images.append(predictions == labels)
        picked = probs[np.arange(len(labels)), labels]
        self.nll += float(np.sum(-np.log(np.clip(picked, 1e-12, 1.0))))
        np.add.at(self.class_total, labels, 1)
        np.add.at(self.class_correct, labels, (predictions == labels).astype(np.int64))
        if reference is not None:
            self.agree += int(np.sum(predictions == np.argmax(reference, -1)))
            self.abs_dprob += float(np.sum(np.abs(probs - reference)))

    def result(self, class_names, has_reference):
        k = len(self.class_total)
        per_class = {str(name): (float(self.class_correct[i] / self.class_total[i])
                                 if self.class_total[i] else None)
                     for i, name in enumerate(class_names)}
        low, high = stats.wilson(self.correct, self.n) if self.n else (None, None)
        return {"accuracy": self.correct / self.n, "accuracy_low": low, "accuracy_high": high,
                "loss": self.nll / self.n,
                "agreement": self.agree / self.n if has_reference else None,
                "mean_abs_dprob": self.abs_dprob / (self.n * k) if has_reference else None,
                "per_class_accuracy": per_class, "examples": self.n,
                CORRECT: np.concatenate(self.correct_images) if self.correct_images
                else np.zeros(0, bool)}


def evaluate(scorers, batches, class_names, reference=None):
    """Scores every model on every batch, one batch in memory at a time.

    Args:
      scorers: {name: callable uint8 [n, H, W, C] -> float32 [n, K] probabilities}.
      batches: iterable of (uint8 pixels [n, H, W, C], int labels [n]) (data.test_batches).
      class_names: K names, index i = output i.
      reference: the name of the model the others are compared with (its top-1 and
        probabilities), or None.
    Returns:
      {name: {"accuracy": top-1 in [0, 1], "accuracy_low", "accuracy_high": its 95% Wilson
              interval (stats.wilson), "loss": mean cross-entropy (nats),
              "agreement": share of images whose top-1 equals the reference's (None without
              a reference), "mean_abs_dprob": mean over images × classes of |p − p_ref|,
              "per_class_accuracy": {class name: accuracy or None}, "examples": int,
              "correct": bool [examples] numpy array, image i classified right (not JSON:
              json_safe drops it; stats.paired_drop compares two of them)}}.
    Raises:
      ValueError: `reference` is not one of `scorers`, or the split is empty.
    """
    if reference is not None and reference not in scorers:
        raise ValueError(f"reference {reference!r} is not among {', '.join(scorers)}")
    tallies = {name: _Tally(len(class_names)) for name in scorers}
    for pixels, labels in batches:
        pixels, labels = np.asarray(pixels), np.asarray(labels).astype(np.int64)
        ref = scorers[reference](pixels) if reference is not None else None
        for name, score in scorers.items():
            probs = ref if name == reference else score(pixels)
            tallies[name].add(probs, labels, ref)
    if not tallies or next(iter(tallies.values())).n == 0:
        raise ValueError("the test split is empty")
    return {name: t.result(class_names, reference is not None) for name, t in tallies.items()}


def keras_metrics(model, dataset, image_size, batch_size=256, splits=("test", "validation")):
    """metrics.json's accuracy figures of a Keras logits model on whole splits, streamed.

    Returns: for each split S of `splits`: "S_accuracy" (top-1 fraction), "S_accuracy_interval"
      ([low, high], its 95% Wilson interval), "S_loss" (mean cross-entropy, nats) and
      "S_examples" (images). The test figures are what the stage reports and the accuracy gate
      compares with; the validation figures are what later choices read.
    """
    from tftool import data

    metrics = {}
    for split in splits:
        result = evaluate({"model": keras_scorer(model)},
                          data.test_batches(dataset, image_size, batch_size, split=split),
                          dataset.class_names)["model"]
        metrics.update({f"{split}_accuracy": result["accuracy"],
                        f"{split}_accuracy_interval": [result["accuracy_low"],
                                                       result["accuracy_high"]],
                        f"{split}_loss": result["loss"], f"{split}_examples": result["examples"]})
    return metrics


def described(metrics, split="test"):
    """"0.9861 [0.9678, 0.9940] on 359 images" from keras_metrics' figures of `split`, or the
    bare accuracy for metrics written before intervals were recorded."""
    if f"{split}_accuracy" not in metrics and "validation_accuracy" in metrics:
        split = "validation"  # a search trial's stage: scored on validation only
    accuracy = metrics.get(f"{split}_accuracy")
    interval = metrics.get(f"{split}_accuracy_interval")
    if accuracy is None:
        return "unknown"
    if not interval:
        return f"{accuracy:.4f}"
    return (f"{accuracy:.4f} [{interval[0]:.4f}, {interval[1]:.4f}] on "
            f"{metrics.get(f'{split}_examples', '?')} images")
