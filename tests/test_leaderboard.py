"""Leaderboard: scores come from the per-run test files, aggregated over folds and seeds."""

import json

import pytest
import yaml

from s3prl_emoaware import leaderboard
from s3prl_emoaware.cli.main import main


def _experiment(path, upstream, downstream, ckpt=None, seed=1337):
    path.mkdir(parents=True)
    args = {"mode": "train", "upstream": upstream, "downstream": downstream, "upstream_ckpt": ckpt, "seed": seed}
    (path / "args_2026-01-01-00-00-00.yaml").write_text(yaml.dump(args))
    return path


def test_scores_match_per_run_files_and_aggregate(tmp_path):
    a = _experiment(tmp_path / "fbank_er" / "fold1", "fbank", "emotion")
    (a / "test_fold1_predict.txt").write_text("u1 neu\nu2 ang\nu3 sad\nu4 hap\n")
    (a / "test_fold1_truth.txt").write_text("u1 neu\nu2 ang\nu3 neu\nu4 neu\n")  # 2/4
    b = _experiment(tmp_path / "fbank_er" / "fold2", "fbank", "emotion")
    (b / "test_fold2_predict.txt").write_text("v1 neu\nv2 ang\n")
    (b / "test_fold2_truth.txt").write_text("v1 neu\nv2 ang\n")  # 2/2
    c = _experiment(tmp_path / "ems_ic", "ems_npc_local", "fluent_commands", ckpt="/x/npc_ems/states-9.ckpt")
    (c / "test_predict.csv").write_text("f1,activate,lights,kitchen\nf2,decrease,heat,none\n")
    (c / "test_truth.csv").write_text("f1,activate,lights,kitchen\nf2,decrease,heat,bedroom\n")  # 1/2
    d = _experiment(tmp_path / "pr", "fbank", "phoneme_recognition")
    (d / "test-hyp.ark").write_text("x1 a b c\nx2 d\n")
    (d / "test-ref.ark").write_text("x1 a b d\nx2 d e\n")  # (1 + 1) / 5
    _experiment(tmp_path / "unfinished", "fbank", "emotion")  # no test output: ignored

    results = leaderboard.collect([tmp_path])
    table = leaderboard.aggregate(results)
    assert table["fbank"]["emotion/acc"]["mean"] == pytest.approx(0.75)
    assert table["fbank"]["emotion/acc"]["std"] == pytest.approx(0.25)
    assert table["fbank"]["emotion/acc"]["n"] == 2
    assert table["fbank"]["phoneme_recognition/per"]["mean"] == pytest.approx(0.4)
    assert table["ems_npc_local (npc_ems)"]["fluent_commands/acc"]["mean"] == pytest.approx(0.5)

    out = tmp_path / "board"
    assert main(["leaderboard", str(tmp_path), "--out", str(out)]) == 0
    md = (out / "leaderboard.md").read_text()
    assert "75.00 ± 25.00 (n=2)" in md and "40.00" in md
    assert (out / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "leaderboard.json").read_text())["fbank"]["emotion/acc"]["n"] == 2
    assert "fbank,emotion,acc,0.750000,0.250000,2" in (out / "leaderboard.csv").read_text()


def test_no_results_is_one_clear_error(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no scored experiments" in capsys.readouterr().err


def test_each_downstream_is_scored_by_its_own_rule_and_unknown_ones_by_any(tmp_path):
    emotion = _experiment(tmp_path / "er", "fbank", "emotion")
    (emotion / "test_fold1_predict.txt").write_text("u1 neu\n")
    (emotion / "test_fold1_truth.txt").write_text("u1 neu\n")
    (emotion / "test_metrics.json").write_text(json.dumps({"ua": 0.1}))  # not an emotion output: not read
    stock = _experiment(tmp_path / "ctc", "fbank", "ctc")  # a downstream the registry does not know
    (stock / "test-hyp.ark").write_text("x1 a b\n")
    (stock / "test-ref.ark").write_text("x1 a c\n")
    assert [(r.metric, r.value, r.fold) for r in leaderboard.score_experiment(emotion)] == [("acc", 1.0, "fold1")]
    assert [(r.metric, r.value) for r in leaderboard.score_experiment(stock)] == [("per", 0.5)]


def _pr_candidate(path, dev_per, test_hyp):
    run = _experiment(path, "ems_npc_local", "phoneme_recognition", ckpt="/x/npc_plain/last.ckpt")
    (run / "test-hyp.ark").write_text(f"x1 {test_hyp}\n")
    (run / "test-ref.ark").write_text("x1 a b c d\n")
    (run / "dev_best.json").write_text(json.dumps({"metric": "per", "value": dev_per, "higher_is_better": False}))
    return run


def test_a_search_keeps_the_dev_best_run_and_the_leaderboard_only_that_one(tmp_path):
    from s3prl_emoaware.downstreams.scoring import NOT_SELECTED_FILE, select_by_dev

    # the loser on dev is the better one on test: the test split must not choose
    low_lr = _pr_candidate(tmp_path / "pr" / "lr0.01", dev_per=0.80, test_hyp="a b c d")  # test PER 0
    high_lr = _pr_candidate(tmp_path / "pr" / "lr0.03", dev_per=0.50, test_hyp="a")  # test PER 0.75
    assert select_by_dev([low_lr, high_lr]) == high_lr
    lost = json.loads((low_lr / NOT_SELECTED_FILE).read_text())
    assert lost["selected"] == str(high_lr) and lost["dev_value"] == 0.80 and lost["selected_dev_value"] == 0.50
    assert not (high_lr / NOT_SELECTED_FILE).exists()
    table = leaderboard.aggregate(leaderboard.collect([tmp_path]))
    assert table["ems_npc_local (npc_plain)"]["phoneme_recognition/per"] == {"mean": 0.75, "std": 0.0, "n": 1}

    # re-selection after the scores changed moves the marker: one winner at a time
    (low_lr / "dev_best.json").write_text(json.dumps({"metric": "per", "value": 0.4, "higher_is_better": False}))
    assert select_by_dev([low_lr, high_lr]) == low_lr
    assert (high_lr / NOT_SELECTED_FILE).is_file() and not (low_lr / NOT_SELECTED_FILE).exists()
    table = leaderboard.aggregate(leaderboard.collect([tmp_path]))
    assert table["ems_npc_local (npc_plain)"]["phoneme_recognition/per"]["mean"] == 0.0


def test_a_search_needs_every_candidates_dev_score(tmp_path):
    from s3prl_emoaware.downstreams.scoring import select_by_dev

    scored = _pr_candidate(tmp_path / "a", dev_per=0.5, test_hyp="a")
    unscored = _experiment(tmp_path / "b", "fbank", "emotion")
    with pytest.raises(ValueError, match=r"b/dev_best.json: no dev score"):
        select_by_dev([scored, unscored])
    (unscored / "dev_best.json").write_text("{")
    with pytest.raises(ValueError, match=r"b/dev_best.json: unreadable dev score"):
        select_by_dev([scored, unscored])
    (unscored / "dev_best.json").write_text(json.dumps({"metric": "acc", "value": 0.9, "higher_is_better": True}))
    with pytest.raises(ValueError, match="different dev metrics"):
        select_by_dev([scored, unscored])
