"""Significance: what the leaderboard can say about differences between submissions (pure, vectorised numpy).

Every submission is scored on the same images, so comparisons are paired. The inputs are arrays aligned
on those images: `correct` (submissions x images, top-1 correctness), `top1` (submissions x images, the
model's own top-1 class) and group weights (groups x images: how often an image counts in a group; an
image with two common locations counts twice in G_l's common group, as in the metric's "occurrence"
unit). Nothing here reads files or knows about submissions.

- `mcnemar_exact`: the exact McNemar test on top-1 correctness of two models (a two-sided binomial
  test on the images that exactly one of them gets right).
- `bootstrap_counts` and `group_accuracies`: the paired bootstrap. One resample of the images,
  shared by every submission, gives each group's accuracy for each submission; gaps and their
  differences follow, so intervals of differences resample images jointly for both models.
- `ranks`, `rank_intervals`, `tied_with_leader`: each submission's 95% interval of its rank over the
  replicates, and which intervals overlap the leader's.
- `agreement`: the share of images on which two submissions have the same top-1.

The effective-robustness fit lives in harness/robustness.py: a run's report draws it too.
"""

from __future__ import annotations

import numpy as np

N_REPLICATES = 1000
SEED = 0
CONFIDENCE = 0.95


def mcnemar_exact(only_a: np.ndarray | int, only_b: np.ndarray | int) -> np.ndarray:
    """Two-sided p-value of the exact McNemar test, elementwise.

    `only_a` images are right for model A only, `only_b` for model B only (the discordant pairs). Under
    the null hypothesis that both models are equally accurate, each discordant image is A's with
    probability 1/2, so p = min(1, 2 P(X <= min(only_a, only_b))) with X ~ Binomial(only_a + only_b, 1/2),
    and p = 1 when no image is discordant.

    >>> float(mcnemar_exact(0, 5)), float(mcnemar_exact(3, 3)), mcnemar_exact([1, 10], [9, 30]).round(5).tolist()
    (0.0625, 1.0, [0.02148, 0.00222])
    """
    only_a, only_b = np.broadcast_arrays(np.asarray(only_a, dtype=np.int64), np.asarray(only_b, dtype=np.int64))
    n, k = (only_a + only_b).ravel(), np.minimum(only_a, only_b).ravel()
    # log C(n, j) = log n! - log j! - log (n - j)!, for j = 0..k of every pair at once (-inf beyond its k).
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, int(n.max(initial=0)) + 1)))])
    j = np.arange(int(k.max(initial=0)) + 1)
    inside = j[None, :] <= k[:, None]
    jj = np.where(inside, j[None, :], 0)
    log_pmf = log_factorial[n][:, None] - log_factorial[jj] - log_factorial[n[:, None] - jj] - n[:, None] * np.log(2)
    log_pmf = np.where(inside, log_pmf, -np.inf)
    p = np.minimum(1.0, 2 * np.exp(np.logaddexp.reduce(log_pmf, axis=1)))
    return np.where(n == 0, 1.0, p).reshape(only_a.shape)


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """(images only A gets right, images only B gets right), for mcnemar_exact."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(correct_b & ~correct_a))


def bootstrap_counts(n_images: int, n_replicates: int = N_REPLICATES, seed: int = SEED) -> np.ndarray:
    """How often each image is drawn in each of `n_replicates` resamples of `n_images` with replacement.

    A (replicates x images) float32 array; every submission is weighed with the same rows, which is
    what makes the bootstrap paired. float32 holds these sums exactly (they stay far below 2**24).

    >>> counts = bootstrap_counts(4, 3, seed=1)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 4), [4.0, 4.0, 4.0])
    """
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_images, size=(n_replicates, n_images))
    drawn += np.arange(n_replicates)[:, None] * n_images
    return np.bincount(drawn.ravel(), minlength=n_replicates * n_images).reshape(
        n_replicates, n_images).astype(np.float32)


def group_accuracies(counts: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted accuracy of every group for every submission in every replicate: (replicates, submissions, groups).

    `counts` (replicates x images) from bootstrap_counts, or a single row of ones for the point estimate;
    `correct` (submissions x images); `weights` (groups x images). NaN where a group is empty in a
    replicate. One matrix product for all submissions and groups at once.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float32))
    correct = np.asarray(correct, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    n_submissions, n_groups = correct.shape[0], weights.shape[0]
    weighted = (correct[:, None, :] * weights[None, :, :]).reshape(n_submissions * n_groups, -1)
    right = (counts @ weighted.T).reshape(len(counts), n_submissions, n_groups)
    total = counts @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return right / total[:, None, :]


def percentile_interval(
    values: np.ndarray, confidence: float = CONFIDENCE, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval along `axis`, NaN (empty replicates) left out.

    >>> low, high = percentile_interval(np.arange(101.0))
    >>> round(float(low), 6), round(float(high), 6)
    (2.5, 97.5)
    """
    tail = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low, high = np.nanquantile(values, [tail, 1 - tail], axis=axis)
    return low, high


def ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Competition ranks along the last axis (1 is best; equal values share the better rank; NaN ranks last).

    >>> ranks(np.array([[0.5, 0.9, 0.5, np.nan]]), higher_is_better=True).tolist()
    [[2, 1, 2, 4]]
    """
    score = np.where(np.isnan(values), -np.inf, values if higher_is_better else -np.asarray(values))
    # 1 + how many submissions score strictly better: a (..., submissions, submissions) comparison.
    return 1 + (score[..., None, :] > score[..., :, None]).sum(axis=-1)


def rank_intervals(
    replicates: np.ndarray, higher_is_better: bool, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Each submission's rank interval over bootstrap replicates (replicates x submissions): integer bounds.

    >>> replicates = np.array([[0.9, 0.5, 0.5], [0.9, 0.6, 0.5], [0.9, 0.5, 0.6]])
    >>> low, high = rank_intervals(replicates, higher_is_better=True, confidence=0.5)
    >>> low.tolist(), high.tolist()
    ([1, 2, 2], [1, 3, 3])
    """
    tail = (1 - confidence) / 2
    rank = ranks(replicates, higher_is_better)
    low, high = np.quantile(rank, [tail, 1 - tail], axis=0, method="inverted_cdf")
    return low.astype(int), high.astype(int)


def tied_with_leader(low: np.ndarray, high: np.ndarray, leader: int) -> np.ndarray:
    """Which rank intervals overlap the leader's (the leader itself is not marked).

    >>> tied_with_leader(np.array([1, 1, 3]), np.array([2, 3, 4]), leader=0).tolist()
    [False, True, False]
    """
    tied = (low <= high[leader]) & (high >= low[leader])
    tied[leader] = False
    return tied


def agreement(top1: np.ndarray) -> np.ndarray:
    """The share of images on which each pair of submissions has the same top-1: (submissions x submissions).

    >>> agreement(np.array([[1, 2, 3, 4], [1, 2, 3, 5], [0, 0, 0, 4]])).tolist()
    [[1.0, 0.75, 0.25], [0.75, 1.0, 0.0], [0.25, 0.0, 1.0]]
    """
    top1 = np.asarray(top1)
    same = np.zeros((len(top1), len(top1)))
    for i in range(len(top1)):  # one row at a time: submissions x images booleans, not a cube
        same[i] = (top1 == top1[i]).mean(axis=1)
    return same
