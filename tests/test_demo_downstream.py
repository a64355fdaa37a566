"""Demo downstream planning: every fold/task becomes train + evaluate-best steps; finished runs are skipped."""

import json

from s3prl_emoaware.demo.downstream import TaskSpec, UpstreamSpec, runner_steps


def test_steps_cover_folds_and_tasks_and_skip_finished(tmp_path):
    up = UpstreamSpec(label="ems_npc", upstream="ems_npc_local", ckpt="/ck/npc.ckpt")
    tasks = [TaskSpec("emotion", "/c/emotion.yaml", "config.runner.total_steps=4", folds=2),
             TaskSpec("fluent_commands", "/c/ic.yaml")]
    steps = runner_steps(up, tasks, tmp_path)
    assert len(steps) == 6  # (2 folds + 1 task) x (train, evaluate)
    train = steps[0]["argv"]
    assert train[train.index("-k") + 1] == "/ck/npc.ckpt"
    assert train[train.index("-o") + 1] == "config.runner.total_steps=4,,config.downstream_expert.datarc.test_fold='fold1'"
    assert train[train.index("-p") + 1] == str(tmp_path / "ems_npc" / "emotion" / "fold1")
    assert steps[1]["evaluate_best"] == str(tmp_path / "ems_npc" / "emotion" / "fold1")
    ic = steps[4]["argv"]
    assert "-o" not in ic and ic[ic.index("-d") + 1] == "fluent_commands"

    marker = steps[1]["marker"]
    (tmp_path / "ems_npc" / "emotion" / "fold1").mkdir(parents=True)
    with open(marker, "w") as f:
        json.dump({"ok": True}, f)
    remaining = runner_steps(up, tasks, tmp_path)
    assert len(remaining) == 4
    assert all("fold1" not in " ".join(s["argv"]) for s in remaining)
