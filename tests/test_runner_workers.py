"""launch_batch with several runner children: whole runs per child, statuses in step order, threads shared out."""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from s3prl_emoaware.s3prl_adapters import runner
from s3prl_emoaware.s3prl_adapters.runner import evaluate_best_step, launch_batch, split_steps, train_step
from s3prl_emoaware.utils import processes

# A stand-in for the launcher: records when it ran, with which threads, and which steps; fails steps whose argv
# says so, as the real batch records a failed run and goes on.
FAKE_LAUNCHER = textwrap.dedent(
    """
    import json, os, sys, time
    argv = sys.argv[1:]
    steps = json.load(open(argv[argv.index("--batch") + 1]))
    status_path = argv[argv.index("--status") + 1]
    start = time.time()
    met = None
    rendezvous = os.environ.get("FAKE_RENDEZVOUS")
    if rendezvous:  # each child says it started, then waits for the others: proves they ran at once, however slow
        folder, expected = rendezvous.split(":")
        open(os.path.join(folder, str(os.getpid())), "w").close()
        deadline = time.time() + 60
        while len(os.listdir(folder)) < int(expected) and time.time() < deadline:
            time.sleep(0.05)
        met = len(os.listdir(folder))
    statuses = []
    for i, step in enumerate(steps):
        ok = "fail" not in step["argv"]
        statuses.append({"step": i, "ok": ok, "argv": step["argv"], "what": step.get("evaluate_best", "train"),
                         "threads": os.environ.get("OMP_NUM_THREADS"), "start": start, "met": met})
        json.dump(statuses, open(status_path, "w"))
    sys.exit(0 if all(s["ok"] for s in statuses) else 1)
    """
)


def _steps(n_runs: int, fail: int = -1):
    steps = []
    for r in range(n_runs):
        steps += [train_step(["run", str(r)] + (["fail"] if r == fail else [])), evaluate_best_step(Path(f"/x/run{r}"))]
    return steps


@pytest.fixture
def fake_launcher(tmp_path, monkeypatch):
    script = tmp_path / "fake_launch.py"
    script.write_text(FAKE_LAUNCHER)
    monkeypatch.setattr(runner, "_launcher", lambda: [sys.executable, str(script)])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return script


def test_split_keeps_each_run_whole_and_contiguous_and_balanced():
    steps = _steps(5)
    groups = split_steps(steps, 2)
    assert [i for g in groups for i in g] == list(range(10))  # every step once, in order
    for g in groups:  # a run's evaluation sits with its training, right after it
        assert "evaluate_best" not in steps[g[0]]
        assert all(("evaluate_best" in steps[i]) == (k % 2 == 1) for k, i in enumerate(g))
    assert sorted(len(g) for g in groups) == [4, 6]
    assert split_steps(steps, 8) == [[2 * r, 2 * r + 1] for r in range(5)]  # never more children than runs
    assert split_steps(steps, 1) == [list(range(10))]


def test_two_children_run_at_once_with_a_core_each_and_statuses_come_back_in_step_order(
    fake_launcher, tmp_path, monkeypatch
):
    monkeypatch.setattr(processes, "available_cores", lambda: 2)
    (tmp_path / "rendezvous").mkdir()
    monkeypatch.setenv("FAKE_RENDEZVOUS", f"{tmp_path / 'rendezvous'}:2")
    steps = _steps(4)
    statuses = launch_batch(steps, tmp_path / "batch", workers=2)
    assert [s["step"] for s in statuses] == list(range(8))
    assert [s["argv"] for s in statuses] == [s["argv"] for s in steps]
    assert {s["threads"] for s in statuses} == {"1"}
    assert len({s["start"] for s in statuses}) == 2  # two children, each reporting its own steps
    assert {s["met"] for s in statuses} == {2}  # each saw the other start while it was still running
    merged = json.loads((tmp_path / "batch" / "runner_status.json").read_text())
    assert merged == statuses


def test_one_worker_is_the_single_child_of_before(fake_launcher, tmp_path):
    statuses = launch_batch(_steps(3), tmp_path / "batch", workers=1)
    assert [s["step"] for s in statuses] == list(range(6))
    assert {s["threads"] for s in statuses} == {None}  # the child's threads are left to torch
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["runner_status.json", "runner_steps.json"]


def test_users_thread_setting_is_kept_and_a_failed_run_is_reported_at_its_place(fake_launcher, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    statuses = launch_batch(_steps(4, fail=3), tmp_path / "batch", workers=2)
    assert {s["threads"] for s in statuses} == {"3"}
    assert [s["ok"] for s in statuses] == [True] * 6 + [False, True]


def test_an_empty_batch_starts_no_child(fake_launcher, tmp_path):
    assert launch_batch([], tmp_path / "batch", workers=2) == []
    assert not (tmp_path / "batch").exists()


def test_runs_are_shared_out_by_their_training_steps():
    def run(steps):
        return [
            train_step(["-o", f"config.runner.total_steps={steps},,config.runner.eval_step=50"]),
            {"evaluate_best": "x"},
        ]

    # the demo's shape: five 300-step folds, two 500-step PR runs, one 1000-step IC run
    steps = [s for n in [300] * 5 + [500, 500, 1000] for s in run(n)]
    groups = split_steps(steps, 2)
    assert [len(g) // 2 for g in groups] == [5, 3]  # 1500 steps against 2000 (by count, 4 and 4: 1200 against 2300)
    assert [i for g in groups for i in g] == list(range(16))
