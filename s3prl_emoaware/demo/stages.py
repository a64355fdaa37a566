"""A resumable sequence of named stages, independent ones side by side.

Each stage writes its outputs, then a marker ``OUT/stages/<name>.json`` (atomically) with
its wall time, start and end, and a summary. A stage whose marker exists is skipped, so a killed
job, re-run, continues where it stopped; delete a marker (or use ``--redo NAME``) to re-run it.

Consecutive stages with the same ``group`` need none of each other's outputs (the pre-trainings
of a study, say). With ``workers`` > 1 and a ``child_command``, the unfinished ones of a group
run as that many fresh processes at once (``child_command(name)`` runs stage ``name`` alone, via
:func:`run_stage`), the cores shared out, each child's output in ``OUT/stages/<name>.log``. Our
models are small: one process keeps a core busy better than two threads keep two. A failed child
lets the running ones finish, starts no other and raises one line naming the stage and its log;
a signal is passed on to the children (their trainers save and stop), then raised as
:class:`Interrupted`; re-running the job resumes either way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..utils.atomic import atomic_write_json
from ..utils.errors import UserFacingError

logger = logging.getLogger(__name__)

__all__ = ["Stage", "run_stages", "run_stage", "run_child_stage", "child_command", "stage_times", "run_staged_job"]


@dataclass
class Stage:
    name: str
    description: str
    run: Callable[[], Optional[dict]]
    group: Optional[str] = None  # see the module docstring: may run beside the other stages of its group


def _marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def _log(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.log"


def _run_here(stage: Stage, out: Path) -> dict:
    logger.info("stage %s: %s", stage.name, stage.description)
    started = time.time()
    start = time.perf_counter()
    summary = stage.run() or {}
    record = {
        "stage": stage.name,
        "description": stage.description,
        "seconds": round(time.perf_counter() - start, 1),
        "started": started,
        "finished": time.time(),
        "summary": summary,
    }
    atomic_write_json(_marker(out, stage.name), record)
    logger.info("stage %s: finished in %.1f s", stage.name, record["seconds"])
    return record


def run_stage(stages: Sequence[Stage], out: Path, name: str) -> dict:
    """Run stage ``name`` of ``stages`` (done or not) in this process and write its marker."""
    stage = next((s for s in stages if s.name == name), None)
    if stage is None:
        raise UserFacingError(f"no stage {name!r}; the stages are: {', '.join(s.name for s in stages)}")
    return _run_here(stage, out)


def child_command(
    job: str, out: Path, quick: bool = False, overrides: Sequence[str] = (), extra: Sequence[str] = ()
) -> Callable[[str], List[str]]:
    """For :func:`run_stages`: the command that runs one stage of ``s3prl-emoaware JOB --out OUT``
    with this run's settings (``--quick``, ``-o`` overrides, ``extra`` options) and ``--stage NAME``."""

    def command(name: str) -> List[str]:
        argv = [sys.executable, "-m", "s3prl_emoaware.cli", job, "--out", str(out), *(["--quick"] if quick else [])]
        for override in overrides:
            argv += ["-o", override]
        return [*argv, *extra, "--stage", name]

    return command


def run_child_stage(stages: Sequence[Stage], out: Path, name: str, job: str) -> dict:
    """``JOB --stage NAME``: run one stage for the job that holds ``out``'s lock, which must be this
    process's parent (it started us; two writers of one folder are otherwise refused)."""
    from ..utils.locks import lock_holder

    if lock_holder(out) != os.getppid():
        raise UserFacingError(
            f"{out}: --stage runs one stage for the {job} that is running in this folder (its parent process); "
            f"to re-run a stage, use {job} --redo {name}"
        )
    return run_stage(stages, out, name)


def _blocks(stages: Sequence[Stage]) -> List[List[Stage]]:
    """``stages`` cut into runs of consecutive stages of one group (ungrouped ones alone)."""
    blocks: List[List[Stage]] = []
    for stage in stages:
        if blocks and stage.group is not None and blocks[-1][-1].group == stage.group:
            blocks[-1].append(stage)
        else:
            blocks.append([stage])
    return blocks


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _side_by_side(
    stages: Sequence[Stage], out: Path, workers: int, child_command: Callable[[str], List[str]], finished
) -> None:
    from ..utils.processes import child_threads, run_children
    from ..utils.signals import Interrupted

    workers = min(workers, len(stages))
    threads = child_threads(workers)
    env = dict(os.environ, **({"OMP_NUM_THREADS": threads} if threads else {}))
    for stage in stages:  # a re-done stage's old marker must not pass for the new run's
        _marker(out, stage.name).unlink(missing_ok=True)
        _log(out, stage.name).unlink(missing_ok=True)
    logger.info(
        "running %d stages, %d at once%s (logs: %s): %s",
        len(stages),
        workers,
        f", {threads} thread(s) each" if threads else "",
        out / "stages" / "<stage>.log",
        ", ".join(s.name for s in stages),
    )

    def on_exit(i: int, status: int) -> None:
        if status == 0 and _marker(out, stages[i].name).is_file():
            finished(stages[i], json.loads(_marker(out, stages[i].name).read_text()))

    statuses, signum = run_children(
        [child_command(s.name) for s in stages],
        [env] * len(stages),
        workers=workers,
        logs=[_log(out, s.name) for s in stages],
        on_exit=on_exit,
        stop_on_failure=True,
    )
    if signum is not None:
        stopped = [s.name for s, status in zip(stages, statuses) if status not in (0, None)]
        raise Interrupted(signum, f"stage(s) {', '.join(stopped) or stages[0].name}")
    for stage, status in zip(stages, statuses):
        if status not in (0, None) or (status == 0 and not _marker(out, stage.name).is_file()):
            log = _log(out, stage.name)
            raise UserFacingError(
                f"stage {stage.name} failed (exit status {status}) in its own process; its log {log} ends:\n"
                f"{_tail(log)}"
            )


def run_stages(
    stages: Sequence[Stage],
    out: Path,
    redo: Sequence[str] = (),
    desc: str = "demo",
    workers: int = 1,
    child_command: Optional[Callable[[str], List[str]]] = None,
) -> Dict[str, dict]:
    """Run ``stages`` in order, skipping finished ones; return {name: marker content}.

    ``desc`` names the job on the progress bar; ``workers`` and ``child_command`` run the
    stages of a group side by side (module docstring).
    """
    from tqdm import tqdm

    done: Dict[str, dict] = {}
    bar = tqdm(total=len(stages), desc=desc, unit="stage", dynamic_ncols=True)

    def finished(stage: Stage, record: dict) -> None:
        done[stage.name] = record
        bar.update(1)

    try:
        for block in _blocks(stages):
            pending = []
            for stage in block:
                marker = _marker(out, stage.name)
                if marker.is_file() and stage.name not in redo:
                    record = json.loads(marker.read_text())
                    logger.info("stage %s: done earlier (%.1f s), skipped", stage.name, record["seconds"])
                    finished(stage, record)
                else:
                    pending.append(stage)
            if len(pending) > 1 and workers > 1 and child_command is not None:
                bar.set_postfix_str(f"{len(pending)} x {block[0].group}")
                _side_by_side(pending, out, workers, child_command, finished)
                continue
            for stage in pending:
                bar.set_postfix_str(stage.name)
                finished(stage, _run_here(stage, out))
    finally:
        bar.close()
    return {s.name: done[s.name] for s in stages if s.name in done}  # in the stages' order


def _busy_seconds(records: Sequence[dict]) -> Tuple[float, bool]:
    """(wall time covered by the stages, whether any ran side by side): the union of their
    [started, finished] spans, each stage counted once; a marker written before spans were
    recorded counts its seconds."""
    spans, loose = [], 0.0
    for record in records:
        if "started" in record and "finished" in record:
            spans.append((record["started"], record["finished"]))
        else:
            loose += record["seconds"]
    busy, end, overlapped = 0.0, float("-inf"), False
    for start, stop in sorted(spans):
        overlapped = overlapped or start < end
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy + loose, overlapped


def stage_times(done: Dict[str, dict]) -> str:
    lines = ["| stage | what | seconds |", "|---|---|---|"]
    total = 0.0
    for name, record in done.items():
        lines.append(f"| {name} | {record['description']} | {record['seconds']:.1f} |")
        total += record["seconds"]
    lines.append(f"| total | | {total:.1f} |")
    wall, overlapped = _busy_seconds(list(done.values()))
    if overlapped:
        lines.append(f"| wall time (stages side by side) | | {wall:.1f} |")
    return "\n".join(lines) + "\n"


def run_staged_job(
    job: str,
    out: Path,
    stages: Sequence[Stage],
    report: str,
    redo: Sequence[str] = (),
    stage: Optional[str] = None,
    workers: int = 1,
    quick: bool = False,
    overrides: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> str:
    """``s3prl-emoaware JOB --out OUT``: run (or finish) ``stages`` into ``out`` under its lock, groups
    ``workers`` at a time, and write ``OUT/REPORT.md`` (the job's ``report``, a path inside ``out``,
    then the stage times); return that text. With ``stage``: only that stage, for the job running in
    ``out`` (its child processes; see :func:`run_child_stage`). ``quick``, ``overrides`` and
    ``extra`` are the job's options, passed on to its stage children.
    """
    from ..utils.atomic import atomic_write_text
    from ..utils.locks import folder_lock

    if stage is not None:
        record = run_child_stage(stages, out, stage, job)
        return f"stage {stage}: {record['seconds']:.1f} s\n"
    command = child_command(job, out, quick, overrides, extra)
    # one job per folder: a second one would run the same stages into the same files
    with folder_lock(out, f"{job} output folder"):
        done = run_stages(stages, out, list(redo), desc=job, workers=workers, child_command=command)
        text = (out / report).read_text() + "\n" + stage_times(done)
        atomic_write_text(out / "REPORT.md", text)
    return text
