"""run_children: at most N children at once, in order, logs, failures and signals; threads shared out by affinity."""

import os
import signal
import sys
import textwrap
import threading

import pytest

from s3prl_emoaware.utils import processes
from s3prl_emoaware.utils.processes import child_threads, run_children

# a child that records when it ran, sleeps, and exits with the status it is given; on SIGINT it
# writes "stopped" and exits 130, as our trainers stop cleanly
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    out, seconds, status = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    def stop(signum, frame):
        open(out, "a").write("stopped\\n")
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    start = time.time()
    print("hello from", out, flush=True)
    time.sleep(seconds)
    open(out, "a").write(f"{start} {time.time()}\\n")
    sys.exit(status)
    """
)


@pytest.fixture
def child(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def cmd(name, seconds=0.3, status=0):
        return [sys.executable, str(script), str(tmp_path / f"{name}.txt"), str(seconds), str(status)]

    return cmd


def _interval(path):
    start, end = map(float, path.read_text().split())
    return start, end


def test_at_most_n_children_run_at_once_in_order(child, tmp_path):
    ended = []
    statuses, signum = run_children(
        [child(f"c{i}") for i in range(5)], workers=2, on_exit=lambda i, status: ended.append((i, status))
    )
    assert statuses == [0] * 5 and signum is None
    assert sorted(ended) == [(i, 0) for i in range(5)]
    spans = [_interval(tmp_path / f"c{i}.txt") for i in range(5)]
    for t in sorted({t for span in spans for t in span}):  # never three running at one instant
        assert sum(start <= t < end for start, end in spans) <= 2
    assert spans[0][0] < spans[2][0] and spans[1][0] < spans[2][0]  # started in order
    assert max(s for s, _ in spans[:2]) < min(e for _, e in spans[:2])  # the first two overlapped


def test_logs_take_each_childs_output_and_statuses_are_reported(child, tmp_path):
    logs = [tmp_path / "logs" / "a.log", tmp_path / "logs" / "b.log"]
    statuses, _ = run_children([child("a"), child("b", status=3)], workers=2, logs=logs)
    assert statuses == [0, 3]
    assert "hello from" in logs[0].read_text() and str(tmp_path / "a.txt") in logs[0].read_text()
    assert str(tmp_path / "b.txt") in logs[1].read_text()


def test_after_a_failure_no_new_child_starts_with_stop_on_failure(child, tmp_path):
    statuses, _ = run_children(
        [child("bad", seconds=0.0, status=1), child("slow", seconds=1.0), child("never")],
        workers=2,
        stop_on_failure=True,
    )
    assert statuses == [1, 0, None]  # the running one finished; the third never started
    assert (tmp_path / "slow.txt").is_file() and not (tmp_path / "never.txt").exists()
    statuses, _ = run_children([child("bad2", seconds=0.0, status=1), child("next")], workers=1)
    assert statuses == [1, 0]  # without it, the queue goes on


def test_a_signal_goes_to_the_running_children_and_stops_the_queue(child, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        statuses, signum = run_children([child("x", seconds=10), child("y", seconds=10), child("z")], workers=2)
    finally:
        timer.cancel()
    assert signum == signal.SIGINT
    assert statuses == [130, 130, None]
    assert (tmp_path / "x.txt").read_text() == "stopped\n" == (tmp_path / "y.txt").read_text()
    assert not (tmp_path / "z.txt").exists()
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again


def test_threads_are_the_available_cores_shared_out(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(processes.os, "cpu_count", lambda: 64)  # the machine's cores, not this process's
    assert processes.available_cores() == 4
    assert child_threads(2) == "2" and child_threads(3) == "1" and child_threads(8) == "1"
    assert child_threads(1) is None  # one child: its threads are left to torch
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert child_threads(2) is None  # the user's setting is kept


def test_torch_threads_are_set_for_the_block_and_restored():
    import torch

    from s3prl_emoaware.utils.processes import torch_threads

    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with torch_threads(None):  # None: left as it is
        assert torch.get_num_threads() == before
