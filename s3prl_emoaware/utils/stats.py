"""Paired comparisons of two methods over matched runs (same seed, fold or split on both sides)."""

from __future__ import annotations

from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["paired_bootstrap", "clustered_bootstrap", "paired_by_seed", "wins_ties_losses"]


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


def clustered_bootstrap(
    groups: Mapping[object, Sequence[float]], resamples: int = 10000, seed: int = 0
) -> Tuple[float, float, float]:
    """Mean of paired differences that come in groups (a pre-training seed's folds), and a 95 %
    two-stage bootstrap interval: groups resampled with replacement, then each drawn group's
    differences resampled within it.

    The folds of one seed share its pre-trained upstream (and whatever that seed's upstream read, a
    StrengthNet, say), so they are not independent pairs: resampling them flat, as
    :func:`paired_bootstrap` does, leaves the seed-to-seed spread out of the interval. With one
    difference per group this is :func:`paired_bootstrap` over the groups.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in groups.values() if len(v)]
    if not arrays:
        raise ValueError("no paired differences")
    everything = np.concatenate(arrays)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(arrays), size=(resamples, len(arrays)))
    sums, counts = np.zeros(resamples), np.zeros(resamples)
    for g, values in enumerate(arrays):
        drawn = picks == g  # (resamples, groups): where group g was drawn
        times = drawn.sum(axis=1)
        if not times.any():
            continue
        # each draw of the group resamples its own members
        inner = values[rng.integers(0, values.size, size=(resamples, len(arrays), values.size))]
        sums += (inner.sum(axis=2) * drawn).sum(axis=1)
        counts += times * values.size
    lo, hi = np.percentile(sums / counts, [2.5, 97.5])
    return float(everything.mean()), float(lo), float(hi)


def wins_ties_losses(diffs: Sequence[float], tol: float = 1e-9, higher_is_better: bool = True) -> str:
    """``"W/T/L"``: pairs where the first method is better, equal (within ``tol``), worse; ``diffs`` are
    first minus second, so for a lower-is-better metric (PER) a negative difference is a win."""
    sign = 1.0 if higher_is_better else -1.0
    wins = sum(sign * d > tol for d in diffs)
    ties = sum(abs(d) <= tol for d in diffs)
    return f"{wins}/{ties}/{len(diffs) - wins - ties}"


def _natural(value) -> tuple:
    """Sort key: integers (or integer strings) by value, before anything else by its text, so that
    seed 10 follows seed 9 instead of seed 1."""
    try:
        return (0, int(value), "")
    except (TypeError, ValueError):
        return (1, 0, str(value))


def paired_by_seed(
    ours: Mapping[Tuple[Hashable, Hashable], float],
    theirs: Mapping[Tuple[Hashable, Hashable], float],
    resamples: int = 10000,
    higher_is_better: bool = True,
) -> Optional[dict]:
    """Two methods' results keyed ``(seed, fold)`` (or ``(seed, split)``), paired over the keys both
    have: ``mean_diff`` (ours minus theirs), its two-stage ``ci95`` (:func:`clustered_bootstrap`, the
    seed the unit), ``n``, the mean difference ``per_seed`` and ``wins_ties_losses``; None without
    shared keys."""
    keys = sorted(set(ours) & set(theirs), key=lambda k: tuple(_natural(v) for v in k))
    if not keys:
        return None
    diffs = [ours[k] - theirs[k] for k in keys]
    by_seed: Dict[Hashable, List[float]] = {}
    for (seed, _), d in zip(keys, diffs):
        by_seed.setdefault(seed, []).append(d)
    mean, lo, hi = clustered_bootstrap(by_seed, resamples)
    return {
        "mean_diff": mean,
        "ci95": [lo, hi],
        "n": len(diffs),
        "per_seed": {str(seed): float(np.mean(v)) for seed, v in by_seed.items()},  # in the keys' order
        "wins_ties_losses": wins_ties_losses(diffs, higher_is_better=higher_is_better),
    }
