"""Detects a model whose test accuracy is no better than guessing, so no stage writes and no
export ships one silently (a real case: a MobileNetV2 trained to 0.92 train accuracy scored 0.115
on 10 test classes, and every exported variant passed the accuracy gate at 0.115, because the
gate compares a variant with its float model, not with chance).
"""
import dataclasses
import math
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Why an accuracy is near chance. Fields are fractions in [0, 1]."""
    test_accuracy: float
    train_accuracy: Optional[float]
    chance: float
    threshold: float  # test accuracy below this is near chance
    learned: bool  # train accuracy far above chance: the model fits train but not test

    def message(self, what="the model"):
        """One line naming both figures and the likely causes."""
        head = (f"{what}: test accuracy {self.test_accuracy:.3f} is near chance "
                f"({self.chance:.3f} = 1/{round(1 / self.chance)} classes; below "
                f"{self.threshold:.3f})")
        if self.learned:
            return (f"{head} while train accuracy is {self.train_accuracy:.3f}: the weights "
                    f"learned but inference does not use them as in training. Likely causes: "
                    f"BatchNormalization moving statistics that lag the weights (a short run "
                    f"with a high BN momentum), train and test images preprocessed differently, "
                    f"or test/ class folders that do not match train/")
        train = ("unknown" if self.train_accuracy is None
                 else f"{self.train_accuracy:.3f}, also near chance")
        return (f"{head}, train accuracy {train}: the model did not learn. Likely causes: a "
                f"--learning_rate far too high or too low, too few --epochs, or labels that "
                f"do not match the images")


def near_chance(test_accuracy, num_classes, num_test, train_accuracy=None):
    """Whether `test_accuracy` is within a few points of chance (1 / num_classes).

    Thresholds (all fractions):
      near chance: test_accuracy < chance + margin, with
        margin = max(3·σ, min((1 − chance) / 10, chance)),
        σ = sqrt(chance·(1 − chance) / num_test), the standard error of a guessing model's
        accuracy on `num_test` images. (1 − chance)/10: a tenth of the way from chance to
        perfect, e.g. 10 classes: below 0.19, 2 classes: below 0.55; capped at chance itself
        (at most twice chance), so with many classes a weak but learned model is not flagged
        (1,000 classes: below 0.002). 3σ: a guessing model scores above it with probability
        about 0.1% (normal approximation), so a small test split does not pass a guesser by
        noise. Measured: with BN statistics lagging the weights, small_cnn on digits scored
        0.164 (train 0.925) and MobileNetV2 0.100 (train 0.72); correct models score > 0.9.
      learned (train far above chance): train_accuracy ≥ chance + (1 − chance)/4, a quarter
        of the way from chance to perfect (10 classes: 0.325). The module docstring's
        MobileNetV2 had 0.916; a run that cannot learn stays near 0.1.
    Args:
      test_accuracy: top-1 accuracy on the test split, in [0, 1].
      num_classes: K ≥ 2.
      num_test: test images, ≥ 1.
      train_accuracy: top-1 training accuracy (last epoch), or None when unknown.
    Returns:
      a Verdict, or None when the test accuracy is clearly above chance. On a test split so
      small that the threshold exceeds 1, it is 1: only a perfect score passes.
    Raises:
      ValueError: num_classes < 2, num_test < 1, or an accuracy outside [0, 1].
    """
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: must be ≥ 2")
    if num_test < 1:
        raise ValueError(f"num_test={num_test}: must be ≥ 1")
    for name, value in (("test_accuracy", test_accuracy), ("train_accuracy", train_accuracy)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value}: must be in [0, 1]")
    chance = 1.0 / num_classes
    sigma = math.sqrt(chance * (1.0 - chance) / num_test)
    threshold = chance + max(3.0 * sigma, min((1.0 - chance) / 10.0, chance))
    # A split too small to tell (2 classes, 6 images: 1.11): a perfect score still passes.
    threshold = min(threshold, 1.0)
    if test_accuracy >= threshold:
        return None
    learned = train_accuracy is not None and train_accuracy >= chance + (1.0 - chance) / 4
    return Verdict(test_accuracy=float(test_accuracy),
                   train_accuracy=None if train_accuracy is None else float(train_accuracy),
                   chance=chance, threshold=threshold, learned=learned)


def refuse_export(workdir, dataset, allow):
    """What tftool-export checks first: raises UserError when WORKDIR/float's recorded test
    accuracy (metrics.json) is near chance for `dataset` (a data.Dataset), because the
    accuracy gate compares variants with the float model and would pass every variant of a
    float model that guesses. `allow` (--allow_chance_accuracy) prints a warning instead.
    No metrics.json: nothing to check (export names the missing model itself)."""
    import sys

    from tftool import UserError, stages

    metrics = stages.read_metrics(workdir, "float") or {}
    if "test_accuracy" not in metrics:
        return
    train = (metrics.get("history", {}).get("accuracy") or [None])[-1]
    verdict = near_chance(metrics["test_accuracy"], dataset.num_classes, dataset.num_test,
                          train)
    if verdict is None:
        return
    where = f"{workdir}/float"
    if allow:
        print(f"tftool-export: warning: --allow_chance_accuracy: exporting anyway; "
              f"{verdict.message(where)}", file=sys.stderr, flush=True)
        return
    raise UserError(f"refusing to export: {verdict.message(where)}. Fix and retrain the float "
                    f"model, or pass --allow_chance_accuracy to export it anyway")
