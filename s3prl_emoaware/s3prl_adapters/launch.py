"""The stock s3prl runner, registered explicitly, for one run or a batch of runs.

``python -m s3prl_emoaware.s3prl_adapters.launch ARGS`` is identical to
``python -m s3prl.run_downstream ARGS`` (same flags, same code path) but does not depend
on the autoload ``.pth`` hook: it calls :func:`s3prl_emoaware.register` first.

``python -m s3prl_emoaware.s3prl_adapters.launch --batch STEPS.json --status OUT.json``
runs several runner invocations in one process. Importing ``s3prl.run_downstream`` costs
about 10 s of CPU (it imports every upstream), which dominated short SUPERB runs such as
the 5 IEMOCAP folds; a batch pays it once. Each step is ``{"argv": [...]}`` or
``{"evaluate_best": EXPDIR, "argv": [extra flags]}`` (evaluate that experiment's
``dev-best.ckpt``, or its last ``states-*.ckpt``, on the test split); a step with a
``"marker"`` path writes its status there when it succeeds. A failing step is
recorded in the status file and the batch goes on with the next step.
"""

from __future__ import annotations

import builtins
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

__all__ = ["main", "run_once", "run_batch", "best_checkpoint", "NoCheckpointError"]


class NoCheckpointError(FileNotFoundError):
    pass


def best_checkpoint(expdir: Path) -> Path:
    """``dev-best.ckpt`` if the run evaluated dev, else its last ``states-*.ckpt``."""
    expdir = Path(expdir)
    best = expdir / "dev-best.ckpt"
    if best.is_file():
        return best
    states = sorted(expdir.glob("states-*.ckpt"), key=lambda p: int(p.stem.split("-")[-1]))
    if not states:
        raise NoCheckpointError(f"{expdir}: training wrote no checkpoint (dev-best.ckpt or states-*.ckpt)")
    logger.warning("%s: no dev-best.ckpt (no dev evaluation ran); using %s", expdir, states[-1].name)
    return states[-1]


def run_once(argv: List[str]) -> None:
    """One ``run_downstream.main()`` with ``argv``; the runner's global patches are undone after it."""
    from s3prl_emoaware import register

    register()
    from s3prl import run_downstream

    original_isinstance, original_argv = builtins.isinstance, sys.argv
    sys.argv = ["run_downstream.py", *argv]
    try:
        run_downstream.main()
    finally:
        builtins.isinstance, sys.argv = original_isinstance, original_argv


def run_batch(steps: List[Dict], status_path: Optional[Path] = None) -> List[Dict]:
    from s3prl_emoaware.utils.atomic import atomic_write_json

    statuses: List[Dict] = []
    for i, step in enumerate(steps):
        argv = list(step.get("argv", []))
        status: Dict = {"step": i, "ok": False}
        try:
            if "evaluate_best" in step:
                ckpt = best_checkpoint(Path(step["evaluate_best"]))
                argv = ["-m", "evaluate", "-e", str(ckpt), "-t", "test", *argv]
                status["checkpoint"] = str(ckpt)
            status["argv"] = argv
            run_once(argv)
            status["ok"] = True
            if "marker" in step:  # lets a caller skip this step when it re-runs
                atomic_write_json(Path(step["marker"]), status)
        except (Exception, SystemExit) as err:  # a bad run is reported, the batch goes on
            status["error"] = f"{type(err).__name__}: {err}"
            logger.error("step %d failed: %s\n%s", i, status["error"], traceback.format_exc())
        statuses.append(status)
        if status_path is not None:
            atomic_write_json(status_path, statuses)
    return statuses


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--batch"]:
        logging.basicConfig(level=logging.INFO)
        steps = json.loads(Path(argv[1]).read_text())
        status_path = Path(argv[argv.index("--status") + 1]) if "--status" in argv else None
        statuses = run_batch(steps, status_path)
        sys.exit(0 if all(s["ok"] for s in statuses) else 1)
    run_once(argv)


if __name__ == "__main__":
    main()
