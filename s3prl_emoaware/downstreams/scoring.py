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
    "DEV_BEST_FILE",
    "NOT_SELECTED_FILE",
    "read_dev_best",
    "select_by_dev",
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


# --- Choosing among runs that differ only in a hyper-parameter (SUPERB searches the learning rate per
# upstream and task on the dev split; the test split only scores the chosen run).

DEV_BEST_FILE = (
    "dev_best.json"  # {"metric", "value", "step", "higher_is_better"}: written by an expert at each new dev best
)
NOT_SELECTED_FILE = "not_selected.json"  # a candidate run that lost the dev comparison: the leaderboard leaves it out


def read_dev_best(expdir: Path) -> Dict[str, object]:
    """The best dev score an expert recorded in ``expdir`` (ValueError naming the file when absent or bad)."""
    path = Path(expdir) / DEV_BEST_FILE
    try:
        record = json.loads(path.read_text())
        float(record["value"])
        bool(record["higher_is_better"])
    except FileNotFoundError:
        raise ValueError(f"{path}: no dev score (this downstream does not record its dev best)") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable dev score ({err})") from None
    return record


def select_by_dev(candidates: List[Path], reason: str = "") -> Path:
    """Among finished runs that differ only in one setting, keep the one with the best dev score.

    Every loser gets a ``not_selected.json`` naming the winner and both dev scores (so the
    leaderboard leaves it out and a reader sees why); a stale one on the winner is removed, so a
    re-selection after more runs is consistent. Ties keep the first candidate (the list order).
    """
    from ..utils.atomic import atomic_write_json

    if not candidates:
        raise ValueError("select_by_dev: no candidate runs")
    records = [(Path(c), read_dev_best(c)) for c in candidates]
    metric = {r["metric"] for _, r in records}
    if len(metric) != 1:
        raise ValueError(f"candidates score different dev metrics {sorted(metric)}: {[str(c) for c in candidates]}")
    sign = 1.0 if records[0][1]["higher_is_better"] else -1.0
    winner, best = max(records, key=lambda cr: sign * float(cr[1]["value"]))  # max keeps the first of equals
    for expdir, record in records:
        marker = expdir / NOT_SELECTED_FILE
        if expdir == winner:
            marker.unlink(missing_ok=True)
            continue
        atomic_write_json(
            marker,
            {
                "selected": str(winner),
                "metric": record["metric"],
                "dev_value": float(record["value"]),
                "selected_dev_value": float(best["value"]),
                "reason": reason or "another candidate had the better dev score",
            },
        )
    return winner
