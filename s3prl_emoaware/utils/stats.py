"""Paired comparisons of two methods over matched runs (same seed, fold or split on both sides)."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

__all__ = ["paired_bootstrap", "wins_ties_losses"]


def paired_bootstrap(diffs: Sequence[float], resamples: int = 10000, seed: int = 0) -> Tuple[float, float, float]:
    """Mean of paired differences and its 95 % percentile-bootstrap interval (pairs resampled
    with replacement, ``resamples`` times, with a fixed seed so a report is reproducible)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no paired differences")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def wins_ties_losses(diffs: Sequence[float], tol: float = 1e-9, higher_is_better: bool = True) -> str:
    """``"W/T/L"``: pairs where the first method is better, equal (within ``tol``), worse; ``diffs`` are
    first minus second, so for a lower-is-better metric (PER) a negative difference is a win."""
    sign = 1.0 if higher_is_better else -1.0
    wins = sum(sign * d > tol for d in diffs)
    ties = sum(abs(d) <= tol for d in diffs)
    return f"{wins}/{ties}/{len(diffs) - wins - ties}"
