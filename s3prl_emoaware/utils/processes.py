"""Child processes that share the machine: how many threads each gets, and a pool that runs them.

Our training steps are small: one process keeps one core busy far better than two threads keep
two, so jobs that can run side by side (runner batches, independent pre-training stages) run as
separate processes with the cores shared out. They are started fresh (``subprocess``), never
forked: forking after torch's OpenMP pool has started is unsafe.

A SIGINT or SIGTERM received while children run is passed on to every running child and no new
child is started; the caller waits for them (each stops cleanly on its own) and decides what to
report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["available_cores", "child_threads", "torch_threads", "run_children"]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform says, else all)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def child_threads(workers: int) -> Optional[str]:
    """``OMP_NUM_THREADS`` for each of ``workers`` children running at once: the available cores
    shared out (at least one each), or None where one child runs or the user set it."""
    if workers <= 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    return str(max(1, available_cores() // workers))


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (None: left as they are), restored after."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_children(
    cmds: Sequence[Sequence[str]],
    envs: Optional[Sequence[Dict[str, str]]] = None,
    workers: Optional[int] = None,
    logs: Optional[Sequence[Path]] = None,
    on_exit: Optional[Callable[[int, int], None]] = None,
    stop_on_failure: bool = False,
    poll_s: float = 0.2,
) -> Tuple[List[Optional[int]], Optional[int]]:
    """Run ``cmds``, at most ``workers`` at once (default: all), in order; return (each one's exit
    status, or None for one never started; the first signal received, or None).

    ``envs[i]`` is child i's environment (default: this process's); ``logs[i]``, if given, takes
    its stdout and stderr (appended). ``on_exit(i, status)`` is called as each child ends.
    After a signal, or a failure with ``stop_on_failure``, no further child starts; the running
    ones are waited for.
    """
    workers = len(cmds) if workers is None else max(1, workers)
    statuses: List[Optional[int]] = [None] * len(cmds)
    running: Dict[int, subprocess.Popen] = {}
    received: List[int] = []
    failed = False

    def pass_on(signum, frame):
        received.append(signum)
        for child in list(running.values()):
            if child.poll() is None:
                child.send_signal(signum)

    def start(i: int) -> None:
        env = dict(envs[i]) if envs else os.environ.copy()
        if logs:
            Path(logs[i]).parent.mkdir(parents=True, exist_ok=True)
            with open(logs[i], "ab") as log:
                running[i] = subprocess.Popen(list(cmds[i]), env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            running[i] = subprocess.Popen(list(cmds[i]), env=env)

    in_main = threading.current_thread() is threading.main_thread()  # handlers can only be set there
    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    try:
        queue = list(range(len(cmds)))
        while queue or running:
            while queue and len(running) < workers and not received and not (failed and stop_on_failure):
                start(queue.pop(0))
            if not running:
                break
            if len(running) == 1 and not queue:  # the last one: no need to poll
                ((i, child),) = running.items()
                child.wait()
            else:
                time.sleep(poll_s)
            for i, child in list(running.items()):
                status = child.poll()
                if status is None:
                    continue
                del running[i]
                statuses[i] = status
                failed = failed or status != 0
                if on_exit is not None:
                    on_exit(i, status)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return statuses, (received[0] if received else None)
