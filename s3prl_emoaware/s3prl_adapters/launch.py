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
recorded in the status file and the batch goes on with the next step, except a full
hidden-state cache, which would fail every later step too.

Leading ``--hidden-cache DIR [--hidden-cache-limit-gb G] [--hidden-cache-dtype D]
[--hidden-cache-layers I,J]`` (before the runner flags or ``--batch``) wrap every frozen
upstream the runner builds in the hidden-state cache (:mod:`.hidden_cache`).

This is the child side; the parent side (flags, shipped configs, checks, steps, folds) is
:mod:`.runner`.
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

__all__ = ["main", "run_once", "run_batch", "best_checkpoint", "NoCheckpointError", "split_cache_flags"]

_CACHE_FLAGS = ("--hidden-cache", "--hidden-cache-limit-gb", "--hidden-cache-dtype", "--hidden-cache-layers")


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


def split_cache_flags(argv: List[str]):
    """(hidden-cache config or None, the rest of ``argv``) from leading ``--hidden-cache*`` flags."""
    from .hidden_cache import HiddenCacheConfig, HiddenCacheError, parse_layers

    values: Dict[str, str] = {}
    while argv and argv[0] in _CACHE_FLAGS:
        if len(argv) < 2:
            raise HiddenCacheError(f"{argv[0]} needs a value")
        values[argv[0]], argv = argv[1], argv[2:]
    if not values:
        return None, argv
    if "--hidden-cache" not in values:
        raise HiddenCacheError("--hidden-cache-* options need --hidden-cache DIR")
    try:
        limit = float(values.get("--hidden-cache-limit-gb", HiddenCacheConfig.limit_gb))
    except ValueError:
        raise HiddenCacheError(
            f"--hidden-cache-limit-gb takes a number, got {values['--hidden-cache-limit-gb']!r}"
        ) from None
    config = HiddenCacheConfig(
        dir=values["--hidden-cache"],
        limit_gb=limit,
        dtype=values.get("--hidden-cache-dtype", HiddenCacheConfig.dtype),
        layers=parse_layers(values.get("--hidden-cache-layers")),
    )
    return config, argv


def run_once(argv: List[str], cache=None) -> None:
    """One ``run_downstream.main()`` with ``argv``; the runner's global patches are undone after it.

    ``cache`` (a ``HiddenCacheConfig``): frozen upstreams read and fill that hidden-state cache.
    """
    from s3prl_emoaware import register

    register()
    from s3prl import run_downstream

    from s3prl_emoaware.utils.atomic import atomic_torch_saves

    from .hidden_cache import hidden_cache_installed

    original_isinstance, original_argv = builtins.isinstance, sys.argv
    sys.argv = ["run_downstream.py", *argv]
    try:
        with hidden_cache_installed(cache), atomic_torch_saves():  # the runner's checkpoints: whole or absent
            run_downstream.main()
    finally:
        builtins.isinstance, sys.argv = original_isinstance, original_argv


def run_batch(steps: List[Dict], status_path: Optional[Path] = None, cache=None) -> List[Dict]:
    from s3prl_emoaware.utils.atomic import atomic_write_json

    from .hidden_cache import HiddenCacheFull

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
            run_once(argv, cache)
            status["ok"] = True
            if "marker" in step:  # lets a caller skip this step when it re-runs
                atomic_write_json(Path(step["marker"]), status)
        except HiddenCacheFull as err:
            status["error"] = str(err)
            logger.error("step %d stopped: %s", i, err)
            status["stop"] = True  # every later step would stop at the same limit
        except (Exception, SystemExit) as err:  # a bad run is reported, the batch goes on
            status["error"] = f"{type(err).__name__}: {err}"
            logger.error("step %d failed: %s\n%s", i, status["error"], traceback.format_exc())
        statuses.append(status)
        if status_path is not None:
            atomic_write_json(status_path, statuses)
        if status.get("stop"):
            break
    return statuses


def main(argv: Optional[List[str]] = None) -> None:
    from s3prl_emoaware.utils.errors import UserFacingError

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO)
    try:
        cache, argv = split_cache_flags(argv)
        if argv[:1] == ["--batch"]:
            steps = json.loads(Path(argv[1]).read_text())
            status_path = Path(argv[argv.index("--status") + 1]) if "--status" in argv else None
            statuses = run_batch(steps, status_path, cache)
            sys.exit(0 if all(s["ok"] for s in statuses) else 1)
        run_once(argv, cache)
    except UserFacingError as err:  # one line, as the s3prl-emoaware command prints its errors
        print(f"s3prl-emoaware: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
