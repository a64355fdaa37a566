"""Relative-attributes ranking functions: StrengthNet's utterance-level training targets.

For each emotion e, a linear ranking function w_e is learnt so that w_e . x(u) > w_e . x(v)
for every emotional utterance u of e and neutral utterance v *of the same speaker*
(RankSVM: a linear SVM on pair differences), where x are the utterance statistics of
:func:`.acoustic.utterance_statistics`, standardised. Scores are then mapped to [0, 1] per
emotion (``calibration``):

- ``percentile`` (default): 5th percentile of the neutral utterances' scores -> 0, 95th
  percentile of that emotion's utterances -> 1, clipped;
- ``minmax``: the lowest and highest score of that emotion's training utterances -> 0 and 1,
  so the emotional targets of each emotion span the whole range.

Neutral utterances get strength 0 (our choice; the paper trains on emotional speech whose
neutral reference is the zero point).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from ..utils.atomic import atomic_write_json
from ..utils.errors import UserFacingError

__all__ = ["RelativeAttributeRanker"]

NEUTRAL = "neu"
CALIBRATIONS = ("percentile", "minmax")


@dataclass
class RelativeAttributeRanker:
    mean: np.ndarray = None
    std: np.ndarray = None
    weights: Dict[str, np.ndarray] = field(default_factory=dict)
    bounds: Dict[str, tuple] = field(default_factory=dict)
    max_pairs_per_speaker: int = 400
    seed: int = 0
    calibration: str = "percentile"

    def __post_init__(self):
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")

    def fit(self, stats: np.ndarray, emotions: Sequence[str], speakers: Sequence[str]) -> "RelativeAttributeRanker":
        from sklearn.svm import LinearSVC

        stats = np.asarray(stats, dtype=np.float64)
        emotions, speakers = np.asarray(emotions), np.asarray(speakers)
        self.mean, self.std = stats.mean(0), stats.std(0) + 1e-8
        z = (stats - self.mean) / self.std
        rng = np.random.default_rng(self.seed)
        for emotion in sorted(set(emotions) - {NEUTRAL}):
            diffs = []
            for spk in sorted(set(speakers)):
                pos = np.where((emotions == emotion) & (speakers == spk))[0]
                neg = np.where((emotions == NEUTRAL) & (speakers == spk))[0]
                pairs = [(i, j) for i in pos for j in neg]
                if len(pairs) > self.max_pairs_per_speaker:
                    pairs = [pairs[k] for k in rng.choice(len(pairs), self.max_pairs_per_speaker, replace=False)]
                diffs += [z[i] - z[j] for i, j in pairs]
            if not diffs:
                continue  # no speaker has both this emotion and neutral
            d = np.array(diffs)
            svm = LinearSVC(C=1.0, fit_intercept=False, max_iter=20000)
            svm.fit(np.concatenate([d, -d]), np.concatenate([np.ones(len(d)), -np.ones(len(d))]))
            w = svm.coef_[0]
            scores_e = z[emotions == emotion] @ w
            scores_n = z[emotions == NEUTRAL] @ w
            if self.calibration == "minmax":
                lo, hi = scores_e.min(), scores_e.max()
            else:
                lo, hi = np.percentile(scores_n, 5), np.percentile(scores_e, 95)
            self.weights[emotion] = w
            self.bounds[emotion] = (float(lo), float(max(hi, lo + 1e-6)))
        if not self.weights:
            raise ValueError("no emotion has neutral and emotional utterances of a common speaker to rank")
        return self

    def raw_score(self, stats: np.ndarray, emotion: str) -> np.ndarray:
        z = (np.atleast_2d(stats) - self.mean) / self.std
        return z @ self.weights[emotion]

    def strength(self, stats: np.ndarray, emotions: Sequence[str]) -> np.ndarray:
        """Utterance strength in [0, 1] for each (statistics, emotion label); neutral and unknown -> 0."""
        stats = np.atleast_2d(stats)
        out = np.zeros(len(stats))
        for k, emotion in enumerate(emotions):
            if emotion in self.weights:
                lo, hi = self.bounds[emotion]
                out[k] = np.clip((self.raw_score(stats[k], emotion)[0] - lo) / (hi - lo), 0.0, 1.0)
        return out

    def save(self, path) -> None:
        """Plain JSON (numbers and names only): loading it can never run code, unlike a pickle."""
        data = {
            "kind": "relative_attribute_ranker",
            "calibration": self.calibration,
            "mean": np.asarray(self.mean).tolist(),
            "std": np.asarray(self.std).tolist(),
            "weights": {e: np.asarray(w).tolist() for e, w in self.weights.items()},
            "bounds": {e: list(b) for e, b in self.bounds.items()},
        }
        atomic_write_json(path, data)

    @classmethod
    def load(cls, path) -> "RelativeAttributeRanker":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if data.get("kind") != "relative_attribute_ranker":
                raise ValueError(f"kind {data.get('kind')!r}")
            return cls(
                mean=np.asarray(data["mean"], dtype=float),
                std=np.asarray(data["std"], dtype=float),
                weights={e: np.asarray(w, dtype=float) for e, w in data["weights"].items()},
                bounds={e: tuple(b) for e, b in data["bounds"].items()},
                calibration=data["calibration"],
            )
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise UserFacingError(
                f"{path}: not a relative-attributes ranker file written by "
                f"train-strengthnet ({type(err).__name__}: {err})"
            ) from None
