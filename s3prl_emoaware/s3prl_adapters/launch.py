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

SIGINT / SIGTERM (:func:`main` only): during training the runner finishes its step, saves
``states-<step>.ckpt`` (whole, as every checkpoint here) and the process exits with 128 + the
signal's number; outside training (imports, evaluation) or on a second signal it exits at once,
without a traceback. The parent (:func:`.runner.launch`) passes its own signals on, so a Ctrl-C
that reaches both processes arrives twice within moments: that repeat is not a second signal.
Each run locks its experiment folder (``FolderLock``): a second runner into it refuses in one line.

Leading ``--hidden-cache DIR [--hidden-cache-limit-gb G] [--hidden-cache-dtype D]
[--hidden-cache-layers I,J] [--hidden-cache-memory-gb M]`` (before the runner flags or ``--batch``) wrap every frozen
upstream the runner builds in the hidden-state cache (:mod:`.hidden_cache`), and keep the audio s3prl's
datasets decode in memory for the whole process (:mod:`.decoded_audio`).

This is the child side; the parent side (flags, shipped configs, checks, steps, folds) is
:mod:`.runner`.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Dict, Iterator, List, Optional

logger = logging.getLogger(__name__)

__all__ = ["main", "run_once", "run_batch", "best_checkpoint", "NoCheckpointError", "split_cache_flags"]

_CACHE_FLAGS = (
    "--hidden-cache",
    "--hidden-cache-limit-gb",
    "--hidden-cache-dtype",
    "--hidden-cache-layers",
    "--hidden-cache-memory-gb",
)


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

    def number(flag: str, default: float) -> float:
        try:
            return float(values.get(flag, default))
        except ValueError:
            raise HiddenCacheError(f"{flag} takes a number, got {values[flag]!r}") from None

    config = HiddenCacheConfig(
        dir=values["--hidden-cache"],
        limit_gb=number("--hidden-cache-limit-gb", HiddenCacheConfig.limit_gb),
        memory_gb=number("--hidden-cache-memory-gb", HiddenCacheConfig.memory_gb),
        dtype=values.get("--hidden-cache-dtype", HiddenCacheConfig.dtype),
        layers=parse_layers(values.get("--hidden-cache-layers")),
    )
    return config, argv


class _Stop:
    """The first SIGINT/SIGTERM of this process (see the module docstring), and the runner it stops."""

    signum: Optional[int] = None
    at: float = 0.0
    runner = None  # the s3prl Runner while its train() runs
    save_step: Optional[int] = None  # that runner's own save_step, restored in what it saves

    # a repeat this soon is the same Ctrl-C, delivered to the process group and passed on by the parent
    REPEAT_S = 1.5


def _on_signal(signum, frame) -> None:
    name = signal.Signals(signum).name
    if _Stop.signum is not None:
        if signum == _Stop.signum and time.monotonic() - _Stop.at < _Stop.REPEAT_S:
            return
        raise KeyboardInterrupt(f"second {name}: stopping at once")
    _Stop.signum, _Stop.at = signum, time.monotonic()
    runner = _Stop.runner
    if runner is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # nothing to save outside training; under DDP only the leader saves, so no rank waits for it
        raise KeyboardInterrupt(name)
    _Stop.save_step = runner.config["runner"]["save_step"]
    runner.config["runner"]["save_step"] = 1  # the runner checks it after every step: it saves this one
    logger.warning(
        "%s received: the runner saves a checkpoint after this step and stops (send it again to stop at once)", name
    )


def _install_signal_handlers() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


@contextlib.contextmanager
def _stop_after_a_saved_step() -> Iterator[None]:
    """Within the block, a stop request (:func:`_on_signal`) ends the runner's ``train()`` right
    after it saved ``states-<step>.ckpt``, by :class:`Interrupted` from that save."""
    import torch
    from s3prl.downstream.runner import Runner

    from s3prl_emoaware.utils.signals import Interrupted

    train, save = Runner.train, torch.save

    def tracked_train(self):
        _Stop.runner = self
        try:
            return train(self)
        finally:
            _Stop.runner = None

    def save_then_stop(obj, f, *args, **kwargs):
        stopping = _Stop.signum is not None and _Stop.save_step is not None
        if stopping and isinstance(obj, dict) and isinstance(obj.get("Config"), dict):
            obj["Config"]["runner"]["save_step"] = _Stop.save_step  # `-e` of it saves as the run did
        result = save(obj, f, *args, **kwargs)
        if stopping and isinstance(f, (str, os.PathLike)) and Path(f).name.startswith("states-"):
            raise Interrupted(_Stop.signum, f"step {obj['Step']}", str(f))
        return result

    Runner.train, torch.save = tracked_train, save_then_stop
    try:
        yield
    finally:
        Runner.train, torch.save = train, save


def _locking_expdir(run_downstream, stack: contextlib.ExitStack):
    """``get_downstream_args`` that also locks the experiment folder it resolved (``-p``, ``-n``
    or the checkpoint's own for ``-e``) before the runner writes anything there."""
    from s3prl_emoaware.utils.locks import folder_lock

    get_args = run_downstream.get_downstream_args

    def get_args_then_lock():
        args, config, backup_files = get_args()
        stack.enter_context(folder_lock(args.expdir, "downstream experiment folder", rank_zero_only=True))
        return args, config, backup_files

    return get_args_then_lock


def run_once(argv: List[str], cache=None) -> None:
    """One ``run_downstream.main()`` with ``argv``; the runner's global patches are undone after it.

    ``cache`` (a ``HiddenCacheConfig``): frozen upstreams read and fill that hidden-state cache.
    A second run into the experiment folder of a running one raises ``FolderLockedError``.
    """
    from s3prl_emoaware import register

    register()
    from s3prl import run_downstream

    from s3prl_emoaware.utils.atomic import atomic_torch_saves

    from .hidden_cache import hidden_cache_installed

    original_isinstance, original_argv = builtins.isinstance, sys.argv
    get_args = run_downstream.get_downstream_args
    sys.argv = ["run_downstream.py", *argv]
    try:
        with contextlib.ExitStack() as stack:  # holds the experiment folder's lock until the run ends
            run_downstream.get_downstream_args = _locking_expdir(run_downstream, stack)
            # the runner's checkpoints: whole or absent; a stop request ends training after one
            with hidden_cache_installed(cache), atomic_torch_saves(), _stop_after_a_saved_step():
                run_downstream.main()
    finally:
        builtins.isinstance, sys.argv = original_isinstance, original_argv
        run_downstream.get_downstream_args = get_args


def run_batch(steps: List[Dict], status_path: Optional[Path] = None, cache=None) -> List[Dict]:
    from s3prl_emoaware.utils.atomic import atomic_write_json

    from .hidden_cache import HiddenCacheFull

    statuses: List[Dict] = []
    for i, step in enumerate(steps):
        if _Stop.signum is not None:  # asked to stop while the previous step was finishing
            raise KeyboardInterrupt(signal.Signals(_Stop.signum).name)
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
    from s3prl_emoaware.utils.signals import Interrupted

    from .decoded_audio import torchaudio_load_memo

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO)
    _install_signal_handlers()
    try:
        cache, argv = split_cache_flags(argv)
        with contextlib.ExitStack() as stack:
            if cache is not None:  # s3prl's datasets decode each file once per process (.decoded_audio)
                stack.enter_context(torchaudio_load_memo())
            if argv[:1] == ["--batch"]:
                steps = json.loads(Path(argv[1]).read_text())
                status_path = Path(argv[argv.index("--status") + 1]) if "--status" in argv else None
                statuses = run_batch(steps, status_path, cache)
                sys.exit(0 if all(s["ok"] for s in statuses) else 1)
            run_once(argv, cache)
    except UserFacingError as err:  # one line, as the s3prl-emoaware command prints its errors
        print(f"s3prl-emoaware: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:  # the parent (or the user) reads the exit status; no traceback
        signum = _Stop.signum or signal.SIGINT
        if isinstance(err, Interrupted):
            logger.warning(
                "runner stopped at %s (%s); saved %s", err.where, signal.Signals(signum).name, err.checkpoint
            )
        else:
            logger.warning("runner stopped (%s)", err or signal.Signals(signum).name)
        sys.exit(128 + int(signum))


if __name__ == "__main__":
    main()
