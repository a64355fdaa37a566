"""Demo downstream planning: every fold/task becomes train + evaluate-best steps; finished runs are skipped."""

import json

import pytest

from s3prl_emoaware.demo.downstream import TaskSpec, UpstreamSpec, runner_steps


def test_steps_cover_folds_and_tasks_and_skip_finished(tmp_path):
    up = UpstreamSpec(label="ems_npc", upstream="ems_npc_local", ckpt="/ck/npc.ckpt")
    tasks = [
        TaskSpec("emotion", "/c/emotion.yaml", "config.runner.total_steps=4", folds=2),
        TaskSpec("fluent_commands", "/c/ic.yaml"),
    ]
    steps = runner_steps(up, tasks, tmp_path)
    assert len(steps) == 6  # (2 folds + 1 task) x (train, evaluate)
    train = steps[0]["argv"]
    assert train[train.index("-k") + 1] == "/ck/npc.ckpt"
    assert (
        train[train.index("-o") + 1] == "config.runner.total_steps=4,,config.downstream_expert.datarc.test_fold='fold1'"
    )
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


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_resumes(tmp_path):
    """The README's main job, reduced: every stage runs and the leaderboard has a row per upstream."""
    from s3prl_emoaware.demo.pipeline import build_stages, load_demo_config, run_demo

    report = run_demo(tmp_path / "demo", quick=True)
    cfg = load_demo_config(quick=True)
    rows = [line for line in report.splitlines() if line.startswith("| ") and "(" in line.split("|")[1]]
    assert {spec.label for spec in cfg.pretrain} == {line.split("(")[1].split(")")[0] for line in rows}
    for name in cfg.baselines:
        assert f"| {name} |" in report
    stages = [s.name for s in build_stages(cfg, tmp_path / "demo")]
    assert all(f"| {name} |" in report for name in stages)  # every stage timed
    # PR's learning rate searched per upstream on dev: one candidate kept, the other marked, one PR figure per row
    for up in [*cfg.baselines, *(p.label for p in cfg.pretrain)]:
        pr = tmp_path / "demo" / "downstream" / up / "phoneme_recognition"
        assert sorted(p.parent.name for p in pr.glob("*/not_selected.json")) in (["lr0.01"], ["lr0.03"]), up
    board = json.loads((tmp_path / "demo" / "leaderboard" / "leaderboard.json").read_text())
    assert all(row["phoneme_recognition/per"]["n"] == 1 for row in board.values())
    clusters = json.loads((tmp_path / "demo" / "clusters" / "report.json").read_text())["overall"]
    assert set(clusters) == {"per_speaker_kmeans", "global_kmeans", "random"}
    # a second call finds every stage done and redoes nothing
    marker = tmp_path / "demo" / "stages" / "leaderboard.json"
    before = marker.stat().st_mtime_ns
    assert run_demo(tmp_path / "demo", quick=True).startswith("## Leaderboard")
    assert marker.stat().st_mtime_ns == before


def test_superb_tasks_point_each_registered_downstream_at_its_corpus(tmp_path):
    from s3prl_emoaware.demo.pipeline import DownstreamSizes, superb_tasks

    corpora = {"iemocap": tmp_path / "iem", "librispeech": tmp_path / "lib", "fsc": tmp_path / "fsc"}
    sizes = DownstreamSizes(emotion="E", phoneme_recognition="P", fluent_commands="F")
    er, pr, ic = superb_tasks(["emotion", "phoneme_recognition", "fluent_commands"], sizes, 3, corpora)
    assert (er.folds, pr.folds, ic.folds) == (3, 0, 0)
    assert er.override == (
        f"config.downstream_expert.datarc.root='{tmp_path / 'iem'}',,"
        f"config.downstream_expert.datarc.meta_data='{tmp_path / 'iem' / 'meta_data'}',,E"
    )
    assert pr.override == (
        f"config.downstream_expert.corpus.path='{tmp_path / 'lib'}',,"
        f"config.downstream_expert.corpus.lexicon=['{tmp_path / 'lib' / 'lexicon.txt'}'],,"
        f"config.downstream_expert.text.vocab_file='{tmp_path / 'lib' / 'phones.txt'}',,P"
    )
    assert ic.override == f"config.downstream_expert.datarc.file_path='{tmp_path / 'fsc'}',,F"
    assert pr.config.endswith("phoneme_recognition.yaml")
    with pytest.raises(ValueError, match="unknown SUPERB task"):
        superb_tasks(["ctc"], sizes, 1, corpora)


def test_lr_search_runs_each_rate_as_a_candidate_and_keeps_the_dev_best(tmp_path):
    from s3prl_emoaware.demo.downstream import select_searched
    from s3prl_emoaware.demo.pipeline import DownstreamSizes, superb_tasks

    corpora = {"iemocap": tmp_path / "iem", "librispeech": tmp_path / "lib", "fsc": tmp_path / "fsc"}
    sizes = DownstreamSizes(emotion="E", phoneme_recognition="P", fluent_commands="F")
    tasks = superb_tasks(
        ["emotion", "phoneme_recognition"], sizes, 2, corpora, {"phoneme_recognition": [0.01, 0.03], "emotion": [1e-3]}
    )
    er, pr1, pr3 = tasks
    assert er.search is None and er.folder is None and er.override.endswith(",,E,,config.optimizer.lr=0.001")
    assert (pr1.folder, pr3.folder) == ("phoneme_recognition/lr0.01", "phoneme_recognition/lr0.03")
    assert pr1.search == pr3.search == "phoneme_recognition"
    assert pr1.override.endswith(",,P,,config.optimizer.lr=0.01") and pr3.override.endswith(
        ",,P,,config.optimizer.lr=0.03"
    )

    up = UpstreamSpec("npc_plain", "ems_npc_local", "/ck/npc.ckpt")
    steps = runner_steps(up, tasks, tmp_path)
    assert [s["argv"][s["argv"].index("-p") + 1] for s in steps if "argv" in s and "-p" in s["argv"]][2:] == [
        str(tmp_path / "npc_plain" / "phoneme_recognition" / "lr0.01"),
        str(tmp_path / "npc_plain" / "phoneme_recognition" / "lr0.03"),
    ]
    for folder, dev in (("lr0.01", 0.9), ("lr0.03", 0.6)):
        expdir = tmp_path / "npc_plain" / "phoneme_recognition" / folder
        expdir.mkdir(parents=True)
        (expdir / "dev_best.json").write_text(json.dumps({"metric": "per", "value": dev, "higher_is_better": False}))
    assert select_searched(up, tasks, tmp_path) == {"phoneme_recognition": "phoneme_recognition/lr0.03"}
    assert (tmp_path / "npc_plain" / "phoneme_recognition" / "lr0.01" / "not_selected.json").is_file()

    # a search for a task left out of this run is unused (the studies' -o 'tasks=[emotion]'); a typo is refused
    assert [t.name for t in superb_tasks(["emotion"], sizes, 1, corpora, {"phoneme_recognition": [0.01, 0.03]})] == [
        "emotion"
    ]
    with pytest.raises(ValueError, match=r"lr_search names unknown SUPERB tasks \['phoneme_recognitoin'\]"):
        superb_tasks(["emotion"], sizes, 1, corpora, {"phoneme_recognitoin": [0.01, 0.03]})
    with pytest.raises(ValueError, match="distinct and > 0"):
        superb_tasks(["phoneme_recognition"], sizes, 1, corpora, {"phoneme_recognition": [0.01, 0.0]})


def test_demo_asks_each_pretraining_task_whether_it_needs_intensities(tmp_path):
    from s3prl_emoaware.demo.pipeline import PretrainSpec, build_stages, load_demo_config

    cfg = load_demo_config(quick=True)
    assert {"strengthnet", "intensity"} <= {s.name for s in build_stages(cfg, tmp_path)}
    # random masking everywhere (the ECAPA row's task is asked without its cluster file existing yet)
    cfg.pretrain = [p for p in cfg.pretrain if p.label in ("mockingjay_random", "npc_plain", "ecapa_contrastive")]
    assert not {"strengthnet", "intensity"} & {s.name for s in build_stages(cfg, tmp_path)}
    # random masking, but NPC's loss weights read the intensities: the task says so
    cfg.pretrain = [
        PretrainSpec("npc_weighted", "ems_npc_tiny", "random", "ems_npc_local", ["objective.variant=loss_weight"])
    ]
    assert {"strengthnet", "intensity"} <= {s.name for s in build_stages(cfg, tmp_path)}
