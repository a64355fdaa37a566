"""How a downstream experiment folder's test outputs become scores.

Each function reads the files one of our experts (or a stock s3prl expert) writes for the
**test** split and returns :class:`Score` rows; the downstream registry
(:mod:`.registry`) says which one applies to which downstream. The leaderboard and
``run-downstream --all-folds`` both score through these, so each metric is computed in one
place (the phone error rate is the phoneme expert's own :func:`~.phoneme.text.phone_error_rate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

__all__ = [
    "Score",
    "LabelAccuracy",
    "read_pairs",
    "label_accuracy",
    "fold_accuracy",
    "fold_scores",
    "intent_scores",
    "per_scores",
    "metrics_json_scores",
]


@dataclass(frozen=True)
class Score:
    """One test-split number of an experiment (``fold``: the held-out fold it was scored on)."""

    metric: str
    value: float
    fold: Optional[str] = None


@dataclass(frozen=True)
class LabelAccuracy:
    """Accuracy of a prediction file against its truth file, and the majority-class rate of the truth."""

    acc: float
    majority_rate: float
    n_test: int


def read_pairs(path: Path, sep: Optional[str]) -> Dict[str, Tuple[str, ...]]:
    """``key rest`` lines (``sep=None``: split once on whitespace) or ``key,a,b,...`` lines -> {key: rest}."""
    out: Dict[str, Tuple[str, ...]] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        parts = line.split(sep) if sep else line.split(maxsplit=1)
        out[parts[0]] = tuple(p.strip() for p in parts[1:])
    return out


def label_accuracy(pred_file: Path, truth_file: Path, sep: Optional[str] = None) -> LabelAccuracy:
    """Share of the truth file's items whose predicted fields all match (a missing prediction is wrong)."""
    pred, truth = read_pairs(pred_file, sep), read_pairs(truth_file, sep)
    if not truth:
        raise ValueError(f"{truth_file}: no test items")
    labels = list(truth.values())
    majority = max(labels.count(c) for c in set(labels)) / len(labels)
    correct = sum(pred.get(k) == v for k, v in truth.items())
    return LabelAccuracy(correct / len(truth), majority, len(truth))


def fold_accuracy(expdir: Path, fold: str) -> LabelAccuracy:
    """The stock IEMOCAP emotion expert's ``test_<fold>_predict.txt`` against ``test_<fold>_truth.txt``."""
    expdir = Path(expdir)
    pred_file, truth_file = expdir / f"test_{fold}_predict.txt", expdir / f"test_{fold}_truth.txt"
    if not pred_file.is_file() or not truth_file.is_file():
        raise FileNotFoundError(f"{expdir}: no test predictions for {fold} (expected {pred_file.name})")
    return label_accuracy(pred_file, truth_file)


def fold_scores(expdir: Path) -> List[Score]:
    """``acc`` of every fold the folder was tested on (emotion, IEMOCAP layout)."""
    scores = []
    for pred in sorted(Path(expdir).glob("test_fold*_predict.txt")):
        fold = pred.name[len("test_") : -len("_predict.txt")]
        scores.append(Score("acc", fold_accuracy(expdir, fold).acc, fold))
    return scores


def intent_scores(expdir: Path) -> List[Score]:
    """``acc`` of ``test_predict.csv`` against ``test_truth.csv``: all three slots right (fluent_commands)."""
    expdir = Path(expdir)
    if not (expdir / "test_predict.csv").is_file():
        return []
    return [Score("acc", label_accuracy(expdir / "test_predict.csv", expdir / "test_truth.csv", ",").acc)]


def per_scores(expdir: Path) -> List[Score]:
    """``per`` of ``test-hyp.ark`` against ``test-ref.ark`` (phoneme_recognition; a missing hypothesis is empty)."""
    expdir = Path(expdir)
    hyp_file, ref_file = expdir / "test-hyp.ark", expdir / "test-ref.ark"
    if not hyp_file.is_file():
        return []
    from .phoneme.text import phone_error_rate

    hyp, ref = read_pairs(hyp_file, None), read_pairs(ref_file, None)
    references = [rest[0].split() if rest else [] for rest in ref.values()]
    hypotheses = [hyp[key][0].split() if hyp.get(key) else [] for key in ref]
    if not any(references):
        raise ValueError(f"{ref_file}: empty references")
    return [Score("per", phone_error_rate(hypotheses, references))]


def metrics_json_scores(expdir: Path) -> List[Score]:
    """Every number in ``test_metrics.json`` (our SER expert writes ``{"ua": .., "wa": ..}``)."""
    path = Path(expdir) / "test_metrics.json"
    if not path.is_file():
        return []
    return [
        Score(key, float(value))
        for key, value in json.loads(path.read_text()).items()
        if isinstance(value, (int, float))
    ]
