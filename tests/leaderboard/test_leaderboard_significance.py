"""harness.leaderboard.significance (McNemar, the paired bootstrap, rank intervals, agreement) and harness.robustness."""

import doctest
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from harness import robustness
from harness.leaderboard import significance


@pytest.mark.parametrize("only_a, only_b, expected", [
    (0, 0, 1.0),  # no discordant image: no evidence either way
    (0, 5, 2 / 32),  # P(X <= 0) = 1/32 for X ~ Bin(5, 1/2), doubled
    (1, 9, 2 * 11 / 1024),  # P(X <= 1) = (1 + 10) / 1024 for Bin(10, 1/2)
    (3, 3, 1.0),  # the tails overlap: capped at 1
    (2, 4, 2 * (1 + 6 + 15) / 64),
])
def test_mcnemar_matches_hand_computed_cases(only_a, only_b, expected):
    assert float(significance.mcnemar_exact(only_a, only_b)) == pytest.approx(expected, rel=1e-12)
    assert float(significance.mcnemar_exact(only_b, only_a)) == pytest.approx(expected, rel=1e-12)  # symmetric


def test_mcnemar_matches_scipys_binomial_test_elementwise():
    rng = np.random.default_rng(0)
    only_a = np.concatenate([rng.integers(0, 40, 30), [0, 1, 2500, 3000, 12000]])
    only_b = np.concatenate([rng.integers(0, 40, 30), [7, 1, 2400, 3100, 11800]])
    p = significance.mcnemar_exact(only_a, only_b)
    expected = [binomtest(int(a), int(a + b), 0.5).pvalue if a + b else 1.0 for a, b in zip(only_a, only_b)]
    np.testing.assert_allclose(p, expected, rtol=1e-9)


def test_discordant_counts_images_only_one_model_gets_right():
    a = np.array([1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 0, 0], dtype=bool)
    assert significance.discordant(a, b) == (2, 1)


def test_bootstrap_counts_resample_every_image_set_with_replacement():
    counts = significance.bootstrap_counts(50, 200, seed=3)
    assert counts.shape == (200, 50) and counts.dtype == np.float32
    assert (counts.sum(axis=1) == 50).all() and (counts >= 0).all()
    np.testing.assert_array_equal(counts, significance.bootstrap_counts(50, 200, seed=3))  # seeded
    assert not np.array_equal(counts, significance.bootstrap_counts(50, 200, seed=4))


def test_group_accuracies_weigh_each_image_by_its_draws_and_its_weight():
    """Three images, two models, hand-computed: an image counts once per draw and once per unit of weight."""
    correct = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
    weights = np.array([[1, 1, 1],    # all images
                        [2, 0, 1]])   # e.g. common locations: image 0 has two
    counts = np.array([[1, 1, 1],     # the images themselves
                       [0, 2, 1]])    # image 1 drawn twice, image 0 not at all
    accuracies = significance.group_accuracies(counts, correct, weights)
    assert accuracies.shape == (2, 2, 2)
    # Replicate 0: model 0 is right on images 0 and 2 (weights 2 and 1 of 3 in the second group), model 1 on 1, 2.
    np.testing.assert_allclose(accuracies[0], [[2 / 3, 3 / 3], [2 / 3, 1 / 3]])
    # Replicate 1: image 1 twice and image 2 once; only image 2 is in the second group.
    np.testing.assert_allclose(accuracies[1], [[1 / 3, 1 / 1], [3 / 3, 1 / 1]])
    empty = significance.group_accuracies(np.array([[0, 1, 0]]), correct, weights)
    assert np.isnan(empty[0, :, 1]).all()  # no image of the group drawn: undefined, not zero


def test_paired_bootstrap_difference_matches_a_loop_over_resampled_images():
    """The vectorised paired bootstrap against resampling images one replicate at a time, by hand."""
    rng = np.random.default_rng(1)
    n = 40
    correct = rng.random((2, n)) < 0.6
    common, uncommon = (rng.random(n) < 0.5).astype(float), rng.integers(0, 3, n).astype(float)
    counts = significance.bootstrap_counts(n, 300, seed=5)
    accuracies = significance.group_accuracies(counts, correct, np.stack([common, uncommon]))
    gaps = accuracies[:, :, 0] - accuracies[:, :, 1]
    draws = np.random.default_rng(5).integers(0, n, size=(300, n))  # the draws bootstrap_counts makes
    for replicate in (0, 17, 299):
        images = draws[replicate]
        by_hand = [np.sum(correct[m][images] * common[images]) / np.sum(common[images])
                   - np.sum(correct[m][images] * uncommon[images]) / np.sum(uncommon[images]) for m in range(2)]
        np.testing.assert_allclose(gaps[replicate], by_hand, rtol=1e-6)


def test_paired_interval_of_a_difference_is_narrower_than_unpaired():
    """Two models right on almost the same images differ by little; pairing is what shows it."""
    rng = np.random.default_rng(2)
    n = 500
    a = rng.random(n) < 0.7
    b = a.copy()
    b[:10] = ~b[:10]  # ten images change
    counts = significance.bootstrap_counts(n, 1000, seed=0)
    accuracy = significance.group_accuracies(counts, np.stack([a, b]), np.ones((1, n)))[:, :, 0]
    low, high = significance.percentile_interval(accuracy[:, 1] - accuracy[:, 0])
    assert high - low < 0.03
    shuffled = accuracy[np.random.default_rng(9).permutation(1000), 1] - accuracy[:, 0]  # independent resamples
    unpaired_low, unpaired_high = significance.percentile_interval(shuffled)
    assert unpaired_high - unpaired_low > 2 * (high - low)


def test_rank_intervals_on_a_planted_case_tie_identical_models_and_not_a_clearly_better_one():
    rng = np.random.default_rng(4)
    n = 2000
    strong = rng.random(n) < 0.9
    middling = rng.random(n) < 0.6
    correct = np.stack([strong, middling, middling.copy()])  # models 1 and 2: identical predictions
    counts = significance.bootstrap_counts(n, 1000, seed=0)
    accuracy = significance.group_accuracies(counts, correct, np.ones((1, n)))[:, :, 0]
    low, high = significance.rank_intervals(accuracy, higher_is_better=True)
    assert low.tolist() == [1, 2, 2] and high.tolist() == [1, 2, 2]
    assert significance.tied_with_leader(low, high, leader=0).tolist() == [False, False, False]
    # The identical pair at the top: they tie with each other, and the clearly worse model does not.
    correct = np.stack([middling, middling.copy(), rng.random(n) < 0.3])
    accuracy = significance.group_accuracies(counts, correct, np.ones((1, n)))[:, :, 0]
    low, high = significance.rank_intervals(accuracy, higher_is_better=True)
    assert low.tolist() == [1, 1, 3] and high.tolist() == [1, 1, 3]
    assert significance.tied_with_leader(low, high, leader=0).tolist() == [False, True, False]


def test_rank_intervals_widen_for_close_models_and_gaps_rank_smallest_first():
    rng = np.random.default_rng(6)
    n = 300
    base = rng.random(n) < 0.6
    close = base.copy()
    swapped = np.concatenate([np.flatnonzero(base)[:2], np.flatnonzero(~base)[:2]])
    close[swapped] = ~close[swapped]  # two images lost, two won: the same accuracy, different images
    values = significance.group_accuracies(significance.bootstrap_counts(n), np.stack([base, close]), np.ones((1, n)))
    low, high = significance.rank_intervals(values[:, :, 0], higher_is_better=True)
    assert low.tolist() == [1, 1] and high.tolist() == [2, 2]
    assert significance.ranks(np.array([0.1, -0.2, 0.1]), higher_is_better=False).tolist() == [2, 1, 2]


def test_agreement_is_the_share_of_images_with_the_same_top1():
    top1 = np.array([[5, 5, 7, 9], [5, 5, 7, 1], [5, 5, 7, 9]])
    shares = significance.agreement(top1)
    np.testing.assert_allclose(shares, [[1, 0.75, 1], [0.75, 1, 0.75], [1, 0.75, 1]])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_effective_robustness_recovers_a_line_in_logit_space_and_each_models_distance():
    common = np.array([0.3, 0.5, 0.7, 0.9])
    logit = np.log(common / (1 - common))
    uncommon = _sigmoid(-0.5 + 0.8 * logit)  # on the line exactly
    fit = robustness.effective_robustness(common, uncommon)
    assert fit["slope"] == pytest.approx(0.8) and fit["intercept"] == pytest.approx(-0.5)
    np.testing.assert_allclose(fit["effective_robustness"], 0, atol=1e-12)
    # One model lifted by 0.3 in logit: every residual moves (least squares), its own the most.
    lifted = uncommon.copy()
    lifted[2] = _sigmoid(-0.5 + 0.8 * logit[2] + 0.3)
    fit = robustness.effective_robustness(common, lifted)
    assert np.argmax(fit["residual_logit"]) == 2 and fit["effective_robustness"][2] > 0
    assert sum(fit["residual_logit"]) == pytest.approx(0, abs=1e-12)
    baseline = _sigmoid(fit["intercept"] + fit["slope"] * logit[2])
    assert fit["effective_robustness"][2] == pytest.approx(lifted[2] - baseline)
    assert fit["n"] == 4 and fit["common"] == common.tolist()


@pytest.mark.parametrize("common, uncommon, message", [
    ([0.5, 0.6], [0.4, 0.5], "needs at least 3 models, got 2"),
    ([0.5, 0.5, 0.5], [0.4, 0.5, 0.3], "common accuracies are all equal"),
    ([0.5, 0.6, 0.7], [0.4, 0.5], "one accuracy per model"),
])
def test_effective_robustness_refuses_what_no_line_fits(common, uncommon, message):
    with pytest.raises(ValueError, match=message):
        robustness.effective_robustness(np.array(common), np.array(uncommon))


def test_effective_robustness_keeps_accuracies_of_0_and_1_finite():
    fit = robustness.effective_robustness(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.2, 0.9]))
    assert all(math.isfinite(value) for value in fit["residual_logit"])


@pytest.mark.parametrize("module", [significance, robustness])
def test_doctests_pass(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
