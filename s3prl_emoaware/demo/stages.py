"""A resumable sequence of named stages.

Each stage writes its outputs, then a marker ``OUT/stages/<name>.json`` (atomically) with
its wall time and a summary. A stage whose marker exists is skipped, so a killed demo,
re-run, continues where it stopped; delete a marker (or use ``--redo NAME``) to re-run it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from ..utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = ["Stage", "run_stages", "stage_times"]


@dataclass
class Stage:
    name: str
    description: str
    run: Callable[[], Optional[dict]]


def _marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def run_stages(stages: Sequence[Stage], out: Path, redo: Sequence[str] = (), desc: str = "demo") -> Dict[str, dict]:
    """Run ``stages`` in order, skipping finished ones; return {name: marker content}.

    ``desc`` names the job on the progress bar.
    """
    from tqdm import tqdm

    done: Dict[str, dict] = {}
    bar = tqdm(stages, desc=desc, unit="stage", dynamic_ncols=True)
    for stage in bar:
        bar.set_postfix_str(stage.name)
        marker = _marker(out, stage.name)
        if marker.is_file() and stage.name not in redo:
            done[stage.name] = json.loads(marker.read_text())
            logger.info("stage %s: done earlier (%.1f s), skipped", stage.name, done[stage.name]["seconds"])
            continue
        logger.info("stage %s: %s", stage.name, stage.description)
        start = time.perf_counter()
        summary = stage.run() or {}
        record = {
            "stage": stage.name,
            "description": stage.description,
            "seconds": round(time.perf_counter() - start, 1),
            "summary": summary,
        }
        atomic_write_json(marker, record)
        done[stage.name] = record
        logger.info("stage %s: finished in %.1f s", stage.name, record["seconds"])
    return done


def stage_times(done: Dict[str, dict]) -> str:
    lines = ["| stage | what | seconds |", "|---|---|---|"]
    total = 0.0
    for name, record in done.items():
        lines.append(f"| {name} | {record['description']} | {record['seconds']:.1f} |")
        total += record["seconds"]
    lines.append(f"| total | | {total:.1f} |")
    return "\n".join(lines) + "\n"
