"""Speaker-independent splits, few-label subsets, and the SER metrics (pure functions)."""

from __future__ import annotations

import random
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["speaker_split", "label_subset", "unweighted_accuracy", "weighted_accuracy"]


def speaker_split(
    speakers: Sequence[str], test_fraction: float, dev_fraction: float, seed: int
) -> Tuple[List[str], List[str], List[str]]:
    """Disjoint (train, dev, test) speaker lists; each of dev and test gets at least one speaker."""
    unique = sorted(set(speakers))
    if len(unique) < 3:
        raise ValueError(f"a speaker-independent split needs at least 3 speakers, got {len(unique)}")
    random.Random(seed).shuffle(unique)
    n_test = max(1, round(test_fraction * len(unique)))
    n_dev = max(1, round(dev_fraction * len(unique)))
    return sorted(unique[n_test + n_dev :]), sorted(unique[n_test : n_test + n_dev]), sorted(unique[:n_test])


def label_subset(labels: Sequence[str], fraction: float, seed: int) -> List[int]:
    """Indices of a class-stratified ``fraction`` of the items (at least one per class)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    rng = random.Random(seed)
    by_class: Dict[str, List[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    chosen: List[int] = []
    for label in sorted(by_class):
        idx = by_class[label]
        rng.shuffle(idx)
        chosen += idx[: max(1, round(fraction * len(idx)))]
    return sorted(chosen)


def weighted_accuracy(pred: Sequence[int], truth: Sequence[int]) -> float:
    """WA: plain accuracy (classes weighted by their frequency)."""
    return float(np.mean(np.asarray(pred) == np.asarray(truth)))


def unweighted_accuracy(pred: Sequence[int], truth: Sequence[int]) -> float:
    """UA: mean per-class recall over the classes present in ``truth``."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    return float(np.mean([np.mean(pred[truth == c] == c) for c in np.unique(truth)]))
