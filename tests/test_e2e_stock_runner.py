"""The stock s3prl runner, with no registration in the test process, on the tiny generated corpora."""

import json

import pytest
from subprocess_env import our_cli, stock_runner

from s3prl_emoaware.config import shipped_config
from s3prl_emoaware.s3prl_adapters.launch import best_checkpoint

pytestmark = pytest.mark.slow

TINY_RUN = (
    "config.runner.total_steps=4,,config.runner.eval_step=2,,config.runner.save_step=2,,"
    "config.runner.log_step=2,,config.runner.gradient_accumulate_steps=1,,"
)


def _runner(args, cwd):
    out = stock_runner(*args, cwd=cwd)
    return out.stdout + out.stderr


@pytest.mark.parametrize("upstream", ["emoaware_fbank", "fbank"])
def test_emotion_train_then_evaluate(upstream, tiny_iemocap, tmp_path):
    expdir = tmp_path / "exp"
    override = (
        TINY_RUN + f"config.downstream_expert.datarc.root='{tiny_iemocap}',,"
        f"config.downstream_expert.datarc.meta_data='{tiny_iemocap / 'meta_data'}',,"
        "config.downstream_expert.datarc.num_workers=0"
    )
    _runner(
        [
            "-m",
            "train",
            "-u",
            upstream,
            "-d",
            "emotion",
            "-c",
            str(shipped_config("downstream_configs", "emotion")),
            "-o",
            override,
            "-p",
            str(expdir),
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
    )
    assert (expdir / "dev-best.ckpt").is_file()
    (expdir / "test_fold1_predict.txt").unlink()
    log = _runner(
        ["-m", "evaluate", "-e", str(expdir / "dev-best.ckpt"), "-t", "test", "--device", "cpu"], cwd=tmp_path
    )
    assert "test acc:" in log
    predictions = (expdir / "test_fold1_predict.txt").read_text().splitlines()
    assert len(predictions) == len(
        json.loads((tiny_iemocap / "meta_data/Session1/test_meta_data.json").read_text())["meta_data"]
    )


def test_fluent_commands_train_then_evaluate(tiny_fsc, tmp_path):
    expdir = tmp_path / "exp"
    override = (
        TINY_RUN
        + f"config.downstream_expert.datarc.file_path='{tiny_fsc}',,config.downstream_expert.datarc.num_workers=0"
    )
    _runner(
        [
            "-m",
            "train",
            "-u",
            "emoaware_fbank",
            "-d",
            "fluent_commands",
            "-c",
            str(shipped_config("downstream_configs", "fluent_commands")),
            "-o",
            override,
            "-p",
            str(expdir),
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
    )
    (expdir / "test_predict.csv").unlink()
    ckpt = best_checkpoint(expdir)  # dev-best.ckpt only exists if dev accuracy ever rose above 0
    log = _runner(["-m", "evaluate", "-e", str(ckpt), "-t", "test", "--device", "cpu"], cwd=tmp_path)
    assert "test acc:" in log and (expdir / "test_predict.csv").is_file()


def test_all_folds_reports_five_folds_and_mean(tiny_iemocap, tmp_path):
    expdir = tmp_path / "folds"
    override = (
        TINY_RUN + f"config.downstream_expert.datarc.root='{tiny_iemocap}',,"
        f"config.downstream_expert.datarc.meta_data='{tiny_iemocap / 'meta_data'}',,"
        "config.downstream_expert.datarc.num_workers=0"
    )
    out = our_cli(
        "run-downstream",
        "--all-folds",
        "-m",
        "train",
        "-u",
        "emoaware_fbank",
        "-d",
        "emotion",
        "-o",
        override,
        "-p",
        str(expdir),
        "--device",
        "cpu",
        cwd=tmp_path,
        timeout=900,
    )
    summary = json.loads((expdir / "all_folds.json").read_text())
    assert sorted(summary["folds"]) == [f"fold{k}" for k in range(1, 6)]
    accs = [summary["folds"][f]["acc"] for f in summary["folds"]]
    assert summary["mean_acc"] == pytest.approx(sum(accs) / 5)
    for k in range(1, 6):  # each fold was scored on its own held-out session
        n_test = len(json.loads((tiny_iemocap / f"meta_data/Session{k}/test_meta_data.json").read_text())["meta_data"])
        assert summary["folds"][f"fold{k}"]["n_test"] == n_test
    assert "mean" in out.stdout and "fold5" in out.stdout
