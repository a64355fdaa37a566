"""SUPERB-style leaderboard from the stock runner's experiment folders.

An experiment folder is any folder holding the runner's ``args_*.yaml`` (written by
``run_downstream.main`` for every run). Each is scored from the files its expert wrote on
the **test** split, never from logs, so the table can be checked against the per-run files;
the downstream registry (:mod:`s3prl_emoaware.downstreams.registry`) says which files, with the
rules of :mod:`s3prl_emoaware.downstreams.scoring`:

================================  =========  ==============================================
downstream                        metric     source
================================  =========  ==============================================
emotion (IEMOCAP, per fold)       acc        ``test_<fold>_predict.txt`` vs ``_truth.txt``
fluent_commands                   acc        ``test_predict.csv`` vs ``test_truth.csv`` (all 3 slots)
phoneme_recognition               PER        ``test-hyp.ark`` vs ``test-ref.ark``
emotion_{cremad,esd,ravdess}      UA, WA     ``test_metrics.json`` ({"ua": .., "wa": ..})
================================  =========  ==============================================

An experiment folder holding ``not_selected.json`` lost a search among runs that differ in one
setting (SUPERB's per-upstream learning-rate search, chosen on the dev split): it is left out.

Rows are upstreams (the ``-u`` name, plus the checkpoint's folder for ``-k`` runs, so EMS and
random-masking checkpoints of one upstream are separate rows), columns are tasks, cells are
mean and spread over folds and seeds.
"""

from __future__ import annotations

import csv
import io
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from .downstreams.scoring import NOT_SELECTED_FILE

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


def score_experiment(expdir: Path) -> List[RunResult]:
    """Test-split results of one experiment folder (empty if it has no test output yet).

    The downstream's registry spec says how its folder is scored; a downstream the registry does
    not know (e.g. stock ``ctc``) is scored by every registered rule that finds its files.
    """
    from .downstreams import registry

    args = _read_args(expdir)
    if args is None:
        return []
    task, label, seed = str(args.get("downstream")), upstream_label(args), args.get("seed")
    spec = registry.get(task)
    rules = [spec.score] if spec is not None else registry.scorers()
    try:
        scores = [score for rule in rules for score in rule(expdir)]
    except (OSError, ValueError) as err:
        logger.warning("skipping %s: %s", expdir, err)
        return []
    return [RunResult(label, task, s.metric, float(s.value), str(expdir), s.fold, seed) for s in scores]


def collect(roots: Iterable[Path]) -> List[RunResult]:
    """Score every experiment folder under ``roots``."""
    results: List[RunResult] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: result folder does not exist")
        folders = {p.parent for p in root.rglob("args_*.yaml")}
        # candidates that lost a dev-score search (e.g. another learning rate) are not results
        dropped = {f for f in folders if (f / NOT_SELECTED_FILE).is_file()}
        if dropped:
            logger.info(
                "%s: %d experiment(s) left out, not selected on dev (%s)", root, len(dropped), NOT_SELECTED_FILE
            )
        for folder in sorted(folders - dropped):
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
    header = ["upstream"] + [f"{c} (%){' ↓' if not HIGHER_IS_BETTER.get(c.split('/')[-1], True) else ''}" for c in cols]
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
    fig, axes = plt.subplots(
        1, len(cols), figsize=(max(4.0, 2.2 + 0.9 * len(upstreams)) * len(cols), 4.2), squeeze=False
    )
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
    paths = {
        "markdown": out_dir / "leaderboard.md",
        "csv": out_dir / "leaderboard.csv",
        "json": out_dir / "leaderboard.json",
        "png": out_dir / "leaderboard.png",
    }
    atomic_write_text(paths["markdown"], to_markdown(table))
    atomic_write_text(paths["csv"], to_csv(table))
    atomic_write_json(paths["json"], table)
    plot(table, paths["png"])
    return paths
