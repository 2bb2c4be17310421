"""Intervals and the accuracy gate's rule (tftool/stats.py)."""
import numpy as np
import pytest

from tftool import stats


def test_wilson_interval_matches_the_published_value():
    # Wilson 1927's score interval for 8 of 10 at 95%: 0.4902 to 0.9433 (e.g. Newcombe 1998,
    # "Two-sided confidence intervals for the single proportion", Table I).
    low, high = stats.wilson(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == 1.0
    # digits: 354 of 359 right; the interval is about ±1.3 points, not ±0.
    low, high = stats.wilson(354, 359)
    assert 0.96 < low < 0.975 and 0.99 < high < 0.997
    for bad in ((5, 0), (-1, 10), (11, 10)):
        with pytest.raises(ValueError):
            stats.wilson(*bad)


def test_paired_interval_of_the_issue_cases():
    # digits: the reference gets 4 images the variant misses, none the other way (1.11 points)
    digits = stats.paired_from_counts(both=351, only_reference=4, only_other=0, neither=4)
    assert digits.drop == pytest.approx(4 / 359)
    assert digits.low < 0 < digits.high and digits.within_noise
    # 10,000 images, 111 lost, none gained: the same 1.11 points, but real
    big = stats.paired_from_counts(both=9700, only_reference=111, only_other=0, neither=189)
    assert big.drop == pytest.approx(0.0111)
    assert 0.0085 < big.low < 0.0100 < big.drop < big.high < 0.014
    assert not big.within_noise
    # identical predictions: drop 0, an interval that still admits a small difference
    same = stats.paired_from_counts(355, 0, 0, 4)
    assert same.drop == 0 and same.low < 0 < same.high


def test_paired_drop_counts_the_discordant_images():
    ref = np.array([1, 1, 1, 0, 0, 1], bool)
    other = np.array([1, 0, 1, 1, 0, 1], bool)
    paired = stats.paired_drop(ref, other)
    assert (paired.both, paired.only_reference, paired.only_other, paired.neither) == (3, 1, 1, 1)
    assert paired.drop == 0.0 and paired.as_dict()["within_noise"] is True
    with pytest.raises(ValueError, match="same images"):
        stats.paired_drop(ref, other[:5])


def test_paired_interval_covers_the_true_drop_95_percent_of_the_time():
    """Coverage by simulation: 2,000 paired splits of 359 images with a known true drop of
    1 point (reference 0.98, variant 0.97, 1.5% of images discordant)."""
    rng = np.random.default_rng(0)
    cells = np.array([0.9625, 0.0175, 0.0075, 0.0125])  # both, only ref, only other, neither
    true_drop = cells[1] - cells[2]
    covered = 0
    trials = 2000
    for counts in rng.multinomial(359, cells, size=trials):
        paired = stats.paired_from_counts(*map(int, counts))
        covered += paired.low <= true_drop <= paired.high
    assert 0.93 <= covered / trials <= 0.99


def test_gate_rules_on_the_issue_cases():
    digits = stats.paired_from_counts(351, 4, 0, 4)       # −1.11 points, within noise
    big = stats.paired_from_counts(9700, 111, 0, 189)     # −1.11 points on 10,000 images
    blank = stats.paired_from_counts(30, 325, 1, 3)       # int8 calibrated on black images
    broken = stats.paired_from_counts(36, 319, 0, 4)      # the int8-breaking model (0.10)
    assert stats.gate_refuses(digits, 0.01, "point")      # the old rule failed on noise
    assert not stats.gate_refuses(digits, 0.01, "paired")
    assert not stats.gate_refuses(digits, 0.01, "confident")
    assert stats.gate_refuses(big, 0.01, "paired")        # real and beyond the tolerance
    assert not stats.gate_refuses(big, 0.01, "confident")  # [0.91, 1.33] is not all above 1
    for rule in stats.GATE_RULES:
        assert stats.gate_refuses(blank, 0.01, rule) and stats.gate_refuses(broken, 0.01, rule)
    better = stats.paired_from_counts(340, 0, 10, 9)
    assert not any(stats.gate_refuses(better, 0.0, rule) for rule in stats.GATE_RULES)
    exactly = stats.paired_from_counts(9800, 100, 0, 100)  # exactly 1 point: tolerated
    assert not stats.gate_refuses(exactly, 0.01, "point")
    with pytest.raises(ValueError, match="paired, confident, point"):
        stats.gate_refuses(digits, 0.01, "strict")


def test_formatting():
    assert stats.format_accuracy(354 / 359, 359) == "0.9861 [0.9678, 0.9940]"
    text = stats.paired_from_counts(351, 4, 0, 4).describe()
    assert text.startswith("-1.11 points [-2.81, +0.11], within noise (4 images only the "
                           "reference gets right, 0 only this one)")
