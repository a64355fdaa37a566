"""Stopping long jobs cleanly: SIGINT and SIGTERM, and a lost peer under ``torchrun``.

A trainer runs its loop inside :func:`graceful_stop`: the first SIGINT or SIGTERM only sets a
flag (the step under way finishes), the trainer then saves a checkpoint and raises
:class:`Interrupted`, which the CLI prints as one line (``interrupted at step N; resume with:
<command>``) with exit status 128 + the signal's number. A second signal stops at once
(``KeyboardInterrupt``; the atomic writers leave no partial file). Every other command runs
under :func:`terminate_as_interrupt`, so SIGTERM (a scheduler's kill) unwinds like Ctrl-C:
``finally`` blocks flush what is done (an intensity cache's index, a stage's marker).

:func:`peer_failure` turns the error a collective raises when another rank died or timed
out (gloo: connection closed, timeout) into one :class:`UserFacingError` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import threading
from typing import Iterator, List, Optional, Sequence

from .errors import UserFacingError

logger = logging.getLogger(__name__)

__all__ = [
    "Interrupted",
    "StopRequest",
    "graceful_stop",
    "terminate_as_interrupt",
    "ignore_interrupts",
    "resume_command",
    "peer_failure",
]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A job stopped on a signal after saving its state at ``where`` (e.g. ``step 40``)."""

    def __init__(self, signum: int, where: str, checkpoint: Optional[str] = None, resume_flag: str = "--resume"):
        super().__init__(f"interrupted at {where} ({signal.Signals(signum).name})")
        self.signum, self.where, self.checkpoint, self.resume_flag = signum, where, checkpoint, resume_flag
        # the whole command to resume with, where it is not this command plus a flag
        # (run-downstream resumes with `-e CHECKPOINT` in place of any earlier -e)
        self.resume_args: Optional[Sequence[str]] = None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    def message(self, argv: Sequence[str], with_flag: bool = True) -> str:
        """The line to print; ``with_flag`` False for a command that resumes by itself when re-run
        (``demo``, whose finished stages are skipped: a trainer inside it restarts its stage)."""
        saved = f"; saved {self.checkpoint}" if self.checkpoint else ""
        command = (
            resume_command(self.resume_args, "")
            if self.resume_args is not None
            else resume_command(argv, self.resume_flag if with_flag else "")
        )
        return f"interrupted at {self.where} ({signal.Signals(self.signum).name}){saved}; resume with: {command}"


def resume_command(argv: Sequence[str], flag: str = "--resume") -> str:
    """The command line that continues the job ``argv`` (the subcommand and its arguments)."""
    args: List[str] = list(argv)
    if flag and flag not in args:
        args.append(flag)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    prefix = (
        ["torchrun", "--nproc_per_node", os.environ.get("LOCAL_WORLD_SIZE", str(world)), "-m", "s3prl_emoaware.cli"]
        if world > 1
        else ["s3prl-emoaware"]
    )
    return shlex.join(prefix + args)


class StopRequest:
    """Set by the first SIGINT/SIGTERM while installed; ``signum`` says which (None: none yet)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        self.signum = signum
        logger.warning(
            "%s received: stopping after this step with a checkpoint (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Within the block, SIGINT/SIGTERM set ``request.signum`` instead of stopping the process."""
    request = StopRequest().install()
    try:
        yield request
    finally:
        request.restore()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` as SIGINT does (cleanup runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ignore_interrupts() -> None:
    """For worker processes (DataLoader): Ctrl-C reaches the whole process group, and only the
    main process may decide when to stop (a worker dying of it would fail the next batch)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_PEER_SIGNS = (
    "connection closed",
    "connection reset",
    "connection refused",
    "broken pipe",
    "timed out",
    "timeout",
    "gloo",
    "nccl",
    "socket",
    "peer",
)


@contextlib.contextmanager
def peer_failure(rank: int, world: int, where, checkpoint: Optional[str] = None) -> Iterator[None]:
    """Turn a collective's failure (another rank died, or stopped answering within the process
    group's timeout) into one line; ``where()`` says how far this rank got."""
    try:
        yield
    except RuntimeError as err:
        dist_error = getattr(__import__("torch").distributed, "DistError", ())
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if (
            world <= 1
            or isinstance(err, UserFacingError)
            or not (isinstance(err, dist_error) or any(s in str(err).lower() for s in _PEER_SIGNS))
        ):
            raise
        last = f"; resume from {checkpoint} with --resume" if checkpoint else ""
        raise UserFacingError(
            f"rank {rank} of {world}: lost the other processes at {where()} ({text[:200]}); "
            f"another rank failed or was killed, see its log{last}"
        ) from None
