"""SUPERB-style leaderboard from the stock runner's experiment folders.

An experiment folder is any folder holding the runner's ``args_*.yaml`` (written by
``run_downstream.main`` for every run). Each is scored from the files its expert wrote on
the **test** split, never from logs, so the table can be checked against the per-run files:

================================  =========  ==============================================
downstream                        metric     source
================================  =========  ==============================================
emotion (IEMOCAP, per fold)       acc        ``test_<fold>_predict.txt`` vs ``_truth.txt``
fluent_commands                   acc        ``test_predict.csv`` vs ``test_truth.csv`` (all 3 slots)
phoneme_recognition               PER        ``test-hyp.ark`` vs ``test-ref.ark``
anything writing test_metrics.json  its keys   ``test_metrics.json`` ({"ua": .., "wa": ..})
================================  =========  ==============================================

Rows are upstreams (the ``-u`` name, plus the checkpoint's folder for ``-k`` runs, so EMS and
random-masking checkpoints of one upstream are separate rows), columns are tasks, cells are
mean and spread over folds and seeds.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

logger = logging.getLogger(__name__)

__all__ = ["RunResult", "collect", "score_experiment", "aggregate", "to_markdown", "to_csv", "plot", "write_all"]

HIGHER_IS_BETTER = {"acc": True, "ua": True, "wa": True, "per": False}


@dataclass(frozen=True)
class RunResult:
    upstream: str
    task: str
    metric: str
    value: float
    expdir: str
    fold: Optional[str] = None
    seed: Optional[int] = None


def _read_args(expdir: Path) -> Optional[dict]:
    files = sorted(expdir.glob("args_*.yaml"))
    for path in files:  # the training run's args (evaluation runs re-write them from the checkpoint)
        try:
            args = yaml.load(path.read_text(), Loader=yaml.Loader)  # runner's own dump: plain types
        except yaml.YAMLError:
            continue
        if isinstance(args, dict) and args.get("mode") == "train":
            return args
    for path in files:
        try:
            args = yaml.load(path.read_text(), Loader=yaml.Loader)
        except yaml.YAMLError:
            continue
        if isinstance(args, dict):
            return args
    return None


def upstream_label(args: dict) -> str:
    name = str(args.get("upstream"))
    ckpt = args.get("upstream_ckpt")
    if ckpt:
        tag = Path(str(ckpt)).parent.name or Path(str(ckpt)).stem
        return f"{name} ({tag})"
    return name


def _pairs(path: Path, sep: Optional[str]) -> Dict[str, Tuple[str, ...]]:
    out: Dict[str, Tuple[str, ...]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        parts = line.split(sep) if sep else line.split(maxsplit=1)
        out[parts[0]] = tuple(p.strip() for p in parts[1:])
    return out


def _accuracy(pred_file: Path, truth_file: Path, sep: Optional[str]) -> float:
    pred, truth = _pairs(pred_file, sep), _pairs(truth_file, sep)
    if not truth:
        raise ValueError(f"{truth_file}: no test items")
    return sum(pred.get(k) == v for k, v in truth.items()) / len(truth)


def _per(hyp_file: Path, ref_file: Path) -> float:
    import editdistance

    hyp, ref = _pairs(hyp_file, None), _pairs(ref_file, None)
    errors = total = 0
    for key, ref_rest in ref.items():
        ref_tokens = ref_rest[0].split() if ref_rest else []
        hyp_rest = hyp.get(key, ())
        hyp_tokens = hyp_rest[0].split() if hyp_rest else []
        errors += editdistance.eval(hyp_tokens, ref_tokens)
        total += len(ref_tokens)
    if total == 0:
        raise ValueError(f"{ref_file}: empty references")
    return errors / total


def score_experiment(expdir: Path) -> List[RunResult]:
    """Test-split results of one experiment folder (empty if it has no test output yet)."""
    args = _read_args(expdir)
    if args is None:
        return []
    task, label, seed = str(args.get("downstream")), upstream_label(args), args.get("seed")
    results: List[RunResult] = []

    def add(metric: str, value: float, fold: Optional[str] = None) -> None:
        results.append(RunResult(label, task, metric, float(value), str(expdir), fold, seed))

    try:
        for pred in sorted(expdir.glob("test_fold*_predict.txt")):
            fold = pred.name[len("test_"):-len("_predict.txt")]
            add("acc", _accuracy(pred, expdir / f"test_{fold}_truth.txt", None), fold)
        if (expdir / "test_predict.csv").is_file():
            add("acc", _accuracy(expdir / "test_predict.csv", expdir / "test_truth.csv", ","))
        if (expdir / "test-hyp.ark").is_file():
            add("per", _per(expdir / "test-hyp.ark", expdir / "test-ref.ark"))
        metrics_file = expdir / "test_metrics.json"
        if metrics_file.is_file():
            for key, value in json.loads(metrics_file.read_text()).items():
                if isinstance(value, (int, float)):
                    add(key, value)
    except (OSError, ValueError) as err:
        logger.warning("skipping %s: %s", expdir, err)
        return []
    return results


def collect(roots: Iterable[Path]) -> List[RunResult]:
    """Score every experiment folder under ``roots``."""
    results: List[RunResult] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: result folder does not exist")
        folders = {p.parent for p in root.rglob("args_*.yaml")}
        for folder in sorted(folders):
            results.extend(score_experiment(folder))
    return results


def aggregate(results: Sequence[RunResult]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{upstream: {"task/metric": {"mean", "std", "n"}}} over folds and seeds."""
    groups: Dict[Tuple[str, str], List[float]] = {}
    for r in results:
        groups.setdefault((r.upstream, f"{r.task}/{r.metric}"), []).append(r.value)
    table: Dict[str, Dict[str, Dict[str, float]]] = {}
    for (upstream, column), values in sorted(groups.items()):
        table.setdefault(upstream, {})[column] = {
            "mean": statistics.fmean(values),
            "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "n": len(values),
        }
    return table


def _columns(table) -> List[str]:
    return sorted({c for row in table.values() for c in row})


def _cell(stats: Optional[Dict[str, float]], percent: bool) -> str:
    if stats is None:
        return "-"
    scale = 100.0 if percent else 1.0
    text = f"{stats['mean'] * scale:.2f}"
    if stats["n"] > 1:
        text += f" ± {stats['std'] * scale:.2f} (n={stats['n']})"
    return text


def to_markdown(table) -> str:
    cols = _columns(table)
    header = ["upstream"] + [f"{c} (%){' ↓' if not HIGHER_IS_BETTER.get(c.split('/')[-1], True) else ''}"
                             for c in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for upstream, row in table.items():
        lines.append("| " + " | ".join([upstream] + [_cell(row.get(c), True) for c in cols]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["upstream", "task", "metric", "mean", "std", "n"])
    for upstream, row in table.items():
        for column, stats in row.items():
            task, metric = column.split("/", 1)
            writer.writerow([upstream, task, metric, f"{stats['mean']:.6f}", f"{stats['std']:.6f}", stats["n"]])
    return buf.getvalue()


def plot(table, path: Path) -> None:
    """Grouped bar chart, one panel per task/metric, error bars = spread over folds/seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .utils.atomic import atomic_path

    cols = _columns(table)
    if not cols:
        raise ValueError("no results to plot")
    upstreams = list(table)
    fig, axes = plt.subplots(1, len(cols), figsize=(max(4.0, 2.2 + 0.9 * len(upstreams)) * len(cols), 4.2),
                             squeeze=False)
    for ax, column in zip(axes[0], cols):
        means = [table[u].get(column, {}).get("mean", float("nan")) * 100 for u in upstreams]
        stds = [table[u].get(column, {}).get("std", 0.0) * 100 for u in upstreams]
        ax.bar(range(len(upstreams)), means, yerr=stds, capsize=3, color="#4C72B0")
        ax.set_xticks(range(len(upstreams)))
        ax.set_xticklabels(upstreams, rotation=35, ha="right", fontsize=8)
        better = "higher" if HIGHER_IS_BETTER.get(column.split("/")[-1], True) else "lower"
        ax.set_title(f"{column} (%, {better} is better)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_all(table, out_dir: Path) -> Dict[str, Path]:
    from .utils.atomic import atomic_write_json, atomic_write_text, ensure_writable_dir

    out_dir = ensure_writable_dir(out_dir)
    paths = {"markdown": out_dir / "leaderboard.md", "csv": out_dir / "leaderboard.csv",
             "json": out_dir / "leaderboard.json", "png": out_dir / "leaderboard.png"}
    atomic_write_text(paths["markdown"], to_markdown(table))
    atomic_write_text(paths["csv"], to_csv(table))
    atomic_write_json(paths["json"], table)
    plot(table, paths["png"])
    return paths
