"""How sure an accuracy, and a difference of two accuracies, can be: intervals and the gate rule.

A test split of 359 images cannot tell a 1-point drop from noise: at an accuracy of 0.98 the
binomial standard error is 0.74 points. Every accuracy tftool prints therefore carries a 95%
interval, and every comparison of two models on the same images is made image by image.

- One accuracy: the Wilson score interval (Wilson 1927, "Probable inference, the law of
  succession, and statistical inference", JASA 22:209). Unlike the normal ("Wald") interval it
  stays inside [0, 1] and keeps its coverage near 0 and 1, where classifiers live.
- Two models on the same images (paired): only the discordant images carry information —
  b images only the reference gets right, c images only the other model gets right
  (McNemar 1947; Dietterich 1998, "Approximate statistical tests for comparing supervised
  classification learning algorithms", Neural Computation 10:1895). The drop is (b − c) / n and
  its interval is Newcombe's method 10 (Newcombe 1998, "Improved confidence intervals for the
  difference between binomial proportions based on paired data", Stat Med 17:2635): Wilson
  intervals of both accuracies combined square-and-add, corrected for their correlation. It
  needs no iteration and keeps its coverage when b + c is small, where the Wald interval of the
  paired difference collapses to zero width.

The gate rule (`gate_refuses`): a variant is refused
  "paired"    (default) when its drop is larger than the tolerance AND real: the point drop
              exceeds max_drop and the 95% interval of the drop lies wholly above zero;
  "confident" only when the whole 95% interval of the drop lies above max_drop;
  "point"     when the point drop exceeds max_drop (no interval; tftool's rule before 0.2).
Why "paired" is the default, with the figures (`paired_drop`):
  digits, 359 test images, 4 images lost, none gained: drop 1.11 points, interval
  [−0.11, 2.81]: noise, so "paired" passes it where "point" refused it;
  10,000 images, 111 lost, none gained: drop 1.11 [0.91, 1.33]: real, so "paired" refuses it,
  while "confident" passes it (0.91 < 1: no realistic split can prove a drop is above 1 point
  when it is 1.1), and on digits "confident" passes a drop of 8 images (2.23 [0.75, 4.32]).
"""
import dataclasses
import math
import statistics

import numpy as np

CONFIDENCE = 0.95
GATE_RULES = ("paired", "confident", "point")


def z_value(confidence=CONFIDENCE):
    """The two-sided standard-normal quantile of `confidence` (1.96 for 0.95).
    Raises ValueError: confidence outside (0, 1)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(correct, n, confidence=CONFIDENCE):
    """The Wilson score interval of an accuracy of `correct` / `n` (Wilson 1927).

    Args:
      correct: images classified correctly, an integer in [0, n].
      n: images, ≥ 1.
      confidence: two-sided level (0.95).
    Returns:
      (low, high): fractions in [0, 1], low ≤ correct / n ≤ high.
    Raises:
      ValueError: n < 1 or correct outside [0, n].
    """
    if n < 1:
        raise ValueError(f"n={n}: an accuracy needs at least one image")
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct}: must be in [0, n={n}]")
    z = z_value(confidence)
    p = correct / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    low = 0.0 if correct == 0 else max(0.0, centre - half)  # exact ends: no 1e-17 residue
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


@dataclasses.dataclass(frozen=True)
class Paired:
    """A reference model and another compared image by image on the same n images.

    Fields (counts are images): both (both right), only_reference (b), only_other (c),
    neither; drop = reference accuracy − other accuracy = (b − c) / n, a fraction (0.01 is
    one point), with its 95% interval [low, high] (Newcombe 1998, method 10).
    """
    n: int
    both: int
    only_reference: int
    only_other: int
    neither: int
    drop: float
    low: float
    high: float

    @property
    def within_noise(self):
        """True when the interval of the drop contains zero: the two may be equally good."""
        return self.low <= 0.0 <= self.high

    def as_dict(self):
        """JSON-able fields, the drop and its interval in fractions."""
        return {**dataclasses.asdict(self), "within_noise": self.within_noise}

    def describe(self, unit_points=True, counts=True):
        """E.g. "-1.11 points [-2.81, +0.11], within noise (4 images only the reference gets
        right, 0 only this one)": the change of the other model's accuracy (−drop) with its
        95% interval, as points by default (format_signed: a part that rounds to zero reads
        "0.00"); `counts` adds the discordant counts."""
        scale = 100.0 if unit_points else 1.0
        change, low, high = -self.drop * scale, -self.high * scale, -self.low * scale
        verdict = "within noise" if self.within_noise else ("worse" if change < 0 else "better")
        unit = " points" if unit_points else ""
        text = f"{format_signed(change)}{unit} [{format_signed(low)}, {format_signed(high)}], " \
               f"{verdict}"
        if counts:
            text += (f" ({self.only_reference} images only the reference gets right, "
                     f"{self.only_other} only this one)")
        return text


def format_signed(value, digits=2):
    """A change as text with its sign: "+1.10", "-2.81", and "0.00" for any value that rounds
    to zero at `digits` decimals (no "-0.00", no "+0.00").

    Args:
      value: float, e.g. a change in percentage points.
      digits: decimals shown, ≥ 0.
    Returns: str.
    """
    if round(value, digits) == 0:
        return f"{0.0:.{digits}f}"
    return f"{value:+.{digits}f}"


def format_change(change, low, high, digits=2):
    """"-1.11 [-2.81, +0.11]": a change with its 95% interval, each part by `format_signed`
    (an unchanged accuracy reads "0.00 [0.00, 0.00]").

    Args: change, low, high: floats in the same unit (e.g. points); digits: decimals shown.
    Returns: str.
    """
    return (f"{format_signed(change, digits)} [{format_signed(low, digits)}, "
            f"{format_signed(high, digits)}]")


def paired_drop(reference_correct, other_correct, confidence=CONFIDENCE):
    """Compares two models on the same images (Newcombe 1998, method 10; McNemar 1947).

    Args:
      reference_correct, other_correct: bool [n] arrays, whether each model classified image i
        correctly, in the same image order (evaluate.evaluate's "correct").
      confidence: two-sided level of the interval (0.95).
    Returns:
      Paired, whose drop is reference accuracy − other accuracy.
    Raises:
      ValueError: arrays of different lengths, or empty.
    """
    ref = np.asarray(reference_correct, bool)
    other = np.asarray(other_correct, bool)
    if ref.shape != other.shape or ref.ndim != 1:
        raise ValueError(f"per-image correctness of shapes {ref.shape} and {other.shape}: "
                         f"both must be [n] over the same images")
    return paired_from_counts(int(np.sum(ref & other)), int(np.sum(ref & ~other)),
                              int(np.sum(~ref & other)), int(np.sum(~ref & ~other)),
                              confidence)


def paired_from_counts(both, only_reference, only_other, neither, confidence=CONFIDENCE):
    """`paired_drop` from the four counts of the paired 2×2 table (images).

    Newcombe's method 10: with p1 = (a + b)/n the reference's accuracy, p2 = (a + c)/n the
    other's, [l1, u1] and [l2, u2] their Wilson intervals and φ the correlation of the table,
      low  = (p1 − p2) − sqrt((p1 − l1)² − 2φ(p1 − l1)(u2 − p2) + (u2 − p2)²)
      high = (p1 − p2) + sqrt((u1 − p1)² − 2φ(u1 − p1)(p2 − l2) + (p2 − l2)²).
    Raises: ValueError: a negative count or no images.
    """
    a, b, c, d = both, only_reference, only_other, neither
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts {a, b, c, d}: must be ≥ 0")
    n = a + b + c + d
    if n < 1:
        raise ValueError("no images to compare")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, confidence)
    l2, u2 = wilson(a + c, n, confidence)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denominator) if denominator else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                          + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
                          + (p2 - l2) ** 2))
    drop = p1 - p2
    return Paired(n=n, both=a, only_reference=b, only_other=c, neither=d, drop=drop,
                  low=max(-1.0, drop - below), high=min(1.0, drop + above))


def gate_refuses(paired, max_drop, rule="paired"):
    """Whether the accuracy gate refuses a variant compared with its reference (`paired`).

    Args:
      paired: Paired, reference vs the variant on the same images.
      max_drop: the tolerated drop, a fraction (0.01 = one point).
      rule: one of GATE_RULES (module docstring): "paired" refuses a drop larger than
        max_drop whose interval excludes zero; "confident" only a drop whose whole interval
        is above max_drop; "point" any point drop above max_drop.
    Raises: ValueError: an unknown rule (names the allowed ones).
    """
    eps = 1e-9  # float noise must not refuse a drop of exactly max_drop
    if rule == "point":
        return paired.drop > max_drop + eps
    if rule == "paired":
        return paired.drop > max_drop + eps and paired.low > 0.0
    if rule == "confident":
        return paired.low > max_drop + eps
    raise ValueError(f"unknown gate rule {rule!r}; allowed: {', '.join(GATE_RULES)}")


def accuracy_summary(correct, n, confidence=CONFIDENCE):
    """{"accuracy", "low", "high", "n"}: an accuracy with its Wilson interval, for JSON."""
    low, high = wilson(correct, n, confidence)
    return {"accuracy": correct / n, "low": low, "high": high, "n": n}


def format_accuracy(accuracy, n, digits=4):
    """"0.9861 [0.9678, 0.9940]": an accuracy (fraction) measured on n images with its 95%
    Wilson interval. The count of correct images is recovered as round(accuracy · n)."""
    low, high = wilson(int(round(accuracy * n)), n)
    return f"{accuracy:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
