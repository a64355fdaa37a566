"""Staged jobs: stages of one group side by side in child processes, failures, resume, and the wall time."""

import json
import sys
import textwrap

import pytest
from subprocess_env import child_env

from s3prl_emoaware.demo.stages import Stage, _busy_seconds, run_child_stage, run_stages, stage_times
from s3prl_emoaware.utils.errors import UserFacingError
from s3prl_emoaware.utils.locks import folder_lock

# A staged job of its own: "prep" alone, then "p0".."p3" in group "pretrain", then "report" alone.
# Each stage notes where it ran (pid), sleeps, and "p1" fails when FAIL names it. Run as a child,
# it runs one stage for its parent, as `ser-study --stage NAME` does.
JOB = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from s3prl_emoaware.demo.stages import Stage, run_child_stage

    def stages(out, sleep=0.4):
        def work(name):
            def run():
                if os.environ.get("FAIL") == name:
                    print("something broke in", name, flush=True)
                    raise SystemExit(3)
                time.sleep(sleep)
                return {"pid": os.getpid(), "threads": os.environ.get("OMP_NUM_THREADS")}
            return run
        group = [Stage(f"p{i}", f"pre-train {i}", work(f"p{i}"), group="pretrain") for i in range(4)]
        return [Stage("prep", "prepare", work("prep")), *group, Stage("report", "report", work("report"))]

    if __name__ == "__main__":
        run_child_stage(stages(Path(sys.argv[1])), Path(sys.argv[1]), sys.argv[2], "fake-job")
    """
)


@pytest.fixture
def job(tmp_path, monkeypatch):
    (tmp_path / "fakejob.py").write_text(JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FAIL", raising=False)
    monkeypatch.setenv("PYTHONPATH", child_env().get("PYTHONPATH", ""))  # the children run the code under test
    import importlib

    module = importlib.import_module("fakejob")
    out = tmp_path / "out"
    out.mkdir()

    def child(name):
        return [sys.executable, str(tmp_path / "fakejob.py"), str(out), name]

    return module, out, child


def _run(job, workers=2, redo=()):
    module, out, child = job
    with folder_lock(out, "fake-job output folder"):  # the parent holds the folder, as the studies do
        return run_stages(module.stages(out), out, redo, desc="fake", workers=workers, child_command=child)


def test_a_group_runs_side_by_side_in_children_and_the_rest_here(job):
    _, out, _ = job
    import os

    done = _run(job)
    assert list(done) == ["prep", "p0", "p1", "p2", "p3", "report"]  # the stages' order, whatever ended first
    pids = {name: record["summary"]["pid"] for name, record in done.items()}
    assert pids["prep"] == pids["report"] == os.getpid()  # alone: in this process
    assert len({pids[f"p{i}"] for i in range(4)} | {os.getpid()}) == 5  # each of the group in a child
    assert all(done[f"p{i}"]["summary"]["threads"] == str(max(1, len(os.sched_getaffinity(0)) // 2)) for i in range(4))
    spans = sorted((done[f"p{i}"]["started"], done[f"p{i}"]["finished"]) for i in range(4))
    assert spans[1][0] < spans[0][1]  # two ran at once
    assert all(sum(s <= t < e for s, e in spans) <= 2 for t, _ in spans)  # never more than two
    assert done["prep"]["finished"] <= spans[0][0] and spans[-1][1] <= done["report"]["started"]
    assert (out / "stages" / "p2.log").is_file() and not (out / "stages" / "prep.log").exists()
    table = stage_times(done)
    assert "| wall time (stages side by side) |" in table
    wall, overlapped = _busy_seconds(list(done.values()))
    assert overlapped and wall < sum(r["seconds"] for r in done.values())


def test_one_worker_runs_every_stage_here(job):
    import os

    done = _run(job, workers=1)
    assert {record["summary"]["pid"] for record in done.values()} == {os.getpid()}
    assert "wall time" not in stage_times(done)


def test_a_failed_child_stops_the_group_with_its_stage_and_log_named(job, monkeypatch):
    _, out, _ = job
    monkeypatch.setenv("FAIL", "p1")
    with pytest.raises(UserFacingError, match=r"(?s)stage p1 failed \(exit status 3\).*p1\.log.*something broke in p1"):
        _run(job)
    markers = sorted(p.stem for p in (out / "stages").glob("*.json"))
    assert markers == ["p0", "prep"]  # p0 ran beside p1 and finished; p2, p3 never started; no report
    monkeypatch.delenv("FAIL")
    done = _run(job)  # the re-run does what is left
    assert done["p0"]["summary"] == json.loads((out / "stages" / "p0.json").read_text())["summary"]
    assert sorted(p.stem for p in (out / "stages").glob("*.json")) == ["p0", "p1", "p2", "p3", "prep", "report"]


def test_done_stages_are_skipped_and_a_redone_one_runs_again(job):
    _, out, _ = job
    first = _run(job)
    again = _run(job, redo=["p2"])
    assert {n: again[n] for n in again if n != "p2"} == {n: first[n] for n in first if n != "p2"}
    assert again["p2"]["started"] > first["report"]["finished"]  # run anew (alone: in this process)


def test_a_stage_child_refuses_to_run_without_its_parent_holding_the_folder(job):
    module, out, _ = job
    with pytest.raises(UserFacingError, match="--stage runs one stage for the fake-job that is running"):
        run_child_stage(module.stages(out), out, "p0", "fake-job")
    assert not (out / "stages" / "p0.json").exists()


def test_wall_time_is_the_union_of_the_stages_spans():
    records = [
        {"seconds": 10, "started": 0.0, "finished": 10.0},
        {"seconds": 8, "started": 2.0, "finished": 10.0},  # inside the first
        {"seconds": 5, "started": 9.0, "finished": 14.0},  # overlaps its end
        {"seconds": 1, "started": 20.0, "finished": 21.0},
        {"seconds": 3},  # a marker written before spans were kept
    ]
    assert _busy_seconds(records) == (pytest.approx(14 + 1 + 3), True)
    assert _busy_seconds([records[0], records[3]]) == (pytest.approx(11), False)


def test_an_unknown_stage_is_named_with_the_known_ones(tmp_path):
    from s3prl_emoaware.demo.stages import run_stage

    with pytest.raises(UserFacingError, match="no stage 'x'; the stages are: a"):
        run_stage([Stage("a", "a", lambda: None)], tmp_path, "x")


def test_a_staged_job_runs_under_the_folder_lock_and_writes_its_report_with_the_stage_times(tmp_path):
    import os

    from s3prl_emoaware.demo.stages import run_staged_job
    from s3prl_emoaware.utils.locks import lock_holder

    out = tmp_path / "out"
    out.mkdir()

    def report():
        (out / "report").mkdir()
        (out / "report" / "fake.md").write_text("the job's table\n")

    stages = [
        Stage("prep", "prepare", lambda: {"holder": lock_holder(out)}),
        Stage("report", "write the report", report),
    ]
    text = run_staged_job("fake-job", out, stages, "report/fake.md", workers=2)
    assert text.startswith("the job's table\n\n| stage | what | seconds |")
    assert "| prep | prepare |" in text and "| report | write the report |" in text
    assert (out / "REPORT.md").read_text() == text
    assert json.loads((out / "stages" / "prep.json").read_text())["summary"]["holder"] == os.getpid()
    assert lock_holder(out) is None  # released
    with pytest.raises(UserFacingError, match="--stage runs one stage for the fake-job that is running"):
        run_staged_job("fake-job", out, stages, "report/fake.md", stage="prep")  # nobody holds the folder
