"""Bootstrap intervals on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from evaluate.intervals import bootstrap_interval, paired_interval, verdict

R, SEED, LEVEL = 2000, 0, 0.95


def test_all_hits_and_all_misses_have_no_spread():
    assert bootstrap_interval(np.ones(24, bool), R, SEED, LEVEL) == (1.0, 1.0)
    assert bootstrap_interval(np.zeros(24, bool), R, SEED, LEVEL) == (0.0, 0.0)


def test_a_binomial_case_matches_the_normal_approximation():
    hits = np.zeros(200)
    hits[:60] = 1  # 30% of 200 videos: standard error sqrt(0.3 * 0.7 / 200) = 0.0324
    low, high = bootstrap_interval(hits, R, SEED, LEVEL)
    half_width = 1.96 * np.sqrt(0.3 * 0.7 / 200)  # 0.0635
    assert low == pytest.approx(0.3 - half_width, abs=0.01) and high == pytest.approx(0.3 + half_width, abs=0.01)


def test_pairing_narrows_the_interval_of_correlated_results():
    rng = np.random.default_rng(1)
    a = rng.random(192) < 0.3
    b = a.copy()
    flip = rng.choice(192, 10, replace=False)
    b[flip] = ~b[flip]  # two models that agree on 182 of 192 videos
    low_a, high_a = bootstrap_interval(a, R, SEED, LEVEL)
    low_b, high_b = bootstrap_interval(b, R, SEED, LEVEL)
    diff, low, high = paired_interval(a, b, R, SEED, LEVEL)
    assert diff == pytest.approx(a.mean() - b.mean())
    unpaired = np.hypot(high_a - low_a, high_b - low_b)  # what independent intervals would give
    assert (high - low) < 0.5 * unpaired
    assert low <= diff <= high


def test_the_verdict_comes_from_the_paired_interval_only():
    assert verdict(0.01, 0.2) == "ahead" and verdict(-0.2, -0.01) == "behind" and verdict(-0.1, 0.1) == "level"
    a = np.ones(100)
    b = np.zeros(100)
    assert verdict(*paired_interval(a, b, R, SEED, LEVEL)[1:]) == "ahead"
    assert verdict(*paired_interval(a, a, R, SEED, LEVEL)[1:]) == "level"


def test_seeded_and_checked():
    hits = np.random.default_rng(2).random(50) < 0.5
    assert bootstrap_interval(hits, R, 3, LEVEL) == bootstrap_interval(hits, R, 3, LEVEL)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval(np.array([]), R, SEED, LEVEL)
    with pytest.raises(ValueError, match="one length"):
        paired_interval(np.ones(3), np.ones(4), R, SEED, LEVEL)
