"""Effective robustness (Taori et al. 2020): accuracy on uncommon settings against accuracy on common ones.

A pure numpy fit, shared by a run's report (over its models) and the leaderboard (over its submissions).
"""

from __future__ import annotations

import numpy as np

MIN_FIT_MODELS = 3  # a line through two points says nothing about either


def _logit(p: np.ndarray, eps: float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p / (1 - p))


def effective_robustness(common: np.ndarray, uncommon: np.ndarray, *, eps: float = 1e-4) -> dict:
    """Effective robustness (Taori et al. 2020) of each model: uncommon against common accuracy.

    `common` is each model's accuracy on P0 (no uncommon attribute), `uncommon` on P1 ∪ P2 ∪ P3, both
    in [0, 1] (clipped to [eps, 1 - eps] so that the logit is finite). A line is fitted by least squares
    to logit(uncommon) against logit(common) over the models; a model's effective robustness is its
    uncommon accuracy minus the line's prediction mapped back to accuracy (positive: more robust than
    its common accuracy predicts), and `residual_logit` its vertical distance to the line in logit units.

    Needs at least MIN_FIT_MODELS models whose common accuracies differ; raises ValueError otherwise.
    Returns {"slope", "intercept", "n", "common", "uncommon", "residual_logit", "effective_robustness"},
    arrays as lists of floats.

    >>> fit = effective_robustness(np.array([0.6, 0.7, 0.8, 0.9]), np.array([0.4, 0.55, 0.6, 0.8]))
    >>> round(fit["slope"], 3), round(fit["intercept"], 3), [round(v, 3) for v in fit["effective_robustness"]]
    (0.95, -0.752, [-0.009, 0.037, -0.038, 0.008])
    """
    common, uncommon = np.asarray(common, dtype=float), np.asarray(uncommon, dtype=float)
    if common.shape != uncommon.shape or common.ndim != 1:
        raise ValueError(f"common and uncommon need one accuracy per model, got shapes {common.shape} and "
                         f"{uncommon.shape}")
    if len(common) < MIN_FIT_MODELS:
        raise ValueError(f"effective robustness needs at least {MIN_FIT_MODELS} models, got {len(common)}")
    x, y = _logit(common, eps), _logit(uncommon, eps)
    if np.ptp(x) == 0:
        raise ValueError("the models' common accuracies are all equal: no line fits them")
    slope, intercept = np.polyfit(x, y, 1)
    predicted = intercept + slope * x
    baseline = 1 / (1 + np.exp(-predicted))
    return {
        "slope": float(slope), "intercept": float(intercept), "n": int(len(x)),
        "common": common.tolist(), "uncommon": uncommon.tolist(),
        "residual_logit": (y - predicted).tolist(),
        "effective_robustness": (uncommon - baseline).tolist(),
    }
