"""SUPERB downstream runs of the demo: every upstream on every task, through the stock runner.

For one upstream, all its runs (5 IEMOCAP folds, phoneme recognition, intent
classification; each trained, then its best checkpoint evaluated on test) go to one child
process (:func:`s3prl_emoaware.s3prl_adapters.runner.launch_batch`), so s3prl's import is paid once
per upstream. A run whose experiment folder already holds its test output is skipped; one
without it (stopped part-way) starts over in an emptied folder, as an uninterrupted run would. The
upstreams are frozen, so their hidden states go through the hidden-state cache
(:mod:`s3prl_emoaware.s3prl_adapters.hidden_cache`) in ``OUT/hidden_cache``: each utterance
passes through an upstream once for all steps, evaluations and folds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

__all__ = ["UpstreamSpec", "TaskSpec", "runner_steps", "run_upstream", "run_upstreams", "select_searched"]


@dataclass
class UpstreamSpec:
    """One leaderboard row: a runner ``-u`` name and, for ``*_local`` upstreams, its ``-k``."""

    label: str
    upstream: str
    ckpt: Optional[str] = None
    feature: Optional[str] = None  # runner -s (None: hidden_states)


@dataclass
class TaskSpec:
    """One leaderboard column: a downstream with its config and demo-size overrides.

    Attributes:
        name: runner ``-d`` name.
        config: path of the runner config (``-c``).
        override: s3prl ``-o`` string (``config.a.b=v,,config.c=w``) with data roots and sizes.
        folds: number of IEMOCAP leave-one-session-out folds (0 = not a fold task).
        folder: experiment folder under the upstream's (default ``name``); lets one downstream
            run several times with different overrides (e.g. speaker splits, label fractions).
        search: tasks sharing a ``search`` name are candidates of one search (e.g. learning
            rates): after they ran, the one with the best dev score is kept per fold and the
            others are marked not selected (:func:`~s3prl_emoaware.downstreams.scoring.select_by_dev`).
    """

    name: str
    config: str
    override: str = ""
    folds: int = 0
    folder: Optional[str] = None
    search: Optional[str] = None


def _fold_names(task: TaskSpec) -> List[Optional[str]]:
    return [f"fold{k}" for k in range(1, task.folds + 1)] or [None]


def _expdir(out: Path, up: UpstreamSpec, task: TaskSpec, fold: Optional[str]) -> Path:
    return out / up.label / (task.folder or task.name) / (fold or "")


def select_searched(up: UpstreamSpec, tasks: List[TaskSpec], out: Path) -> Dict[str, str]:
    """For each ``search`` group of ``tasks`` and each fold, keep the candidate run with the best
    dev score (the others get ``not_selected.json``); returns {group[/fold]: chosen folder}."""
    from ..downstreams.scoring import select_by_dev

    groups: Dict[str, List[TaskSpec]] = {}
    for task in tasks:
        if task.search:
            groups.setdefault(task.search, []).append(task)
    chosen: Dict[str, str] = {}
    for group, members in groups.items():
        for fold in _fold_names(members[0]):
            expdirs = [_expdir(out, up, t, fold) for t in members]
            winner = select_by_dev(expdirs, f"{up.label}: dev-selected among {len(expdirs)} runs of search {group!r}")
            chosen[group + (f"/{fold}" if fold else "")] = str(winner.relative_to(out / up.label))
    return chosen


def runner_steps(
    up: UpstreamSpec, tasks: List[TaskSpec], out: Path, device: str = "cpu", seed: int = 1337
) -> List[Dict]:
    """The launch-batch steps still to run for upstream ``up`` (finished runs are left out)."""
    from ..s3prl_adapters.runner import (
        RUN_DONE_FILE,
        discard_unfinished,
        evaluate_best_step,
        finished_run,
        fold_override,
        merge_override,
        train_step,
    )

    steps: List[Dict] = []
    for task in tasks:
        for fold in _fold_names(task):
            expdir = _expdir(out, up, task, fold)
            if finished_run(expdir) is not None:
                continue
            discard_unfinished(expdir)
            override = task.override
            if fold is not None:
                override = merge_override(override, fold_override(task.name, fold))
            argv = [
                "-m",
                "train",
                "-u",
                up.upstream,
                "-d",
                task.name,
                "-c",
                task.config,
                "-p",
                str(expdir),
                "--device",
                device,
                "--seed",
                str(seed),
            ]
            if up.ckpt:
                argv += ["-k", up.ckpt]
            if up.feature:
                argv += ["-s", up.feature]
            if override:
                argv += ["-o", override]
            steps += [train_step(argv), evaluate_best_step(expdir, ["--device", device], expdir / RUN_DONE_FILE)]
    return steps


def run_upstream(
    up: UpstreamSpec,
    tasks: List[TaskSpec],
    out: Path,
    device: str = "cpu",
    hidden_cache: bool = True,
    workers: int = 1,
) -> dict:
    """Run (or finish) every task for one upstream; raise if a step failed. ``hidden_cache``:
    read the frozen upstream's hidden states from ``out/hidden_cache`` (False: recompute them at
    every step, as the stock runner does). ``workers``: runner processes at once (see
    :func:`~s3prl_emoaware.s3prl_adapters.runner.launch_batch`)."""
    return run_upstreams([(up, tasks)], out, device, hidden_cache, up.label, workers)


def run_upstreams(
    jobs: List[Tuple[UpstreamSpec, List[TaskSpec]]],
    out: Path,
    device: str = "cpu",
    hidden_cache: bool = True,
    name: str = "batch",
    workers: int = 1,
) -> dict:
    """:func:`run_upstream` for several (upstream, tasks) in one child process (s3prl imported
    once for all); the batch's step and status files go to ``out/<name>``."""
    from ..s3prl_adapters.hidden_cache import HiddenCacheConfig
    from ..s3prl_adapters.runner import RunDownstreamError, launch_batch

    steps = [step for up, tasks in jobs for step in runner_steps(up, tasks, out, device)]
    if not steps:
        return {"runs": 0, "selected": _select_all(jobs, out)}
    cache_argv = HiddenCacheConfig(dir=str(out / "hidden_cache")).to_argv() if hidden_cache else []
    statuses = launch_batch(steps, out / name, cache_argv, workers=workers)
    failed = [s for s in statuses if not s["ok"]]
    if failed or len(statuses) != len(steps):
        detail = failed[0].get("error") if failed else "the batch stopped early"
        raise RunDownstreamError(
            f"{name}: {len(failed)} of {len(steps)} runner steps failed ({detail}); "
            f"see {out / name / 'runner_status.json'}"
        )
    return {"runs": len(steps) // 2, "selected": _select_all(jobs, out)}


def _select_all(jobs: List[Tuple[UpstreamSpec, List[TaskSpec]]], out: Path) -> Dict[str, Dict[str, str]]:
    chosen = {up.label: select_searched(up, tasks, out) for up, tasks in jobs}
    return {label: c for label, c in chosen.items() if c}
