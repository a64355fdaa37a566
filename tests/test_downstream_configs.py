"""Shipped SUPERB configs and the data-root check."""

import pytest
import yaml

from s3prl_emoaware.config import ConfigError, shipped_config
from s3prl_emoaware.downstreams.data_roots import check_data_roots, data_root_keys

RUNNER_KEYS = {
    "total_steps",
    "gradient_clipping",
    "gradient_accumulate_steps",
    "log_step",
    "eval_step",
    "save_step",
    "max_keep",
    "eval_dataloaders",
}


@pytest.mark.parametrize(
    "name", ["emotion", "fluent_commands", "phoneme_recognition", "emotion_cremad", "emotion_esd", "emotion_ravdess"]
)
def test_shipped_configs_are_complete(name):
    config = yaml.safe_load(shipped_config("downstream_configs", name).read_text())
    assert RUNNER_KEYS <= set(config["runner"])
    assert config["optimizer"]["name"] == "TorchOptim"
    with pytest.raises(ConfigError, match=f"{data_root_keys(name)[0]} is not set"):
        check_data_roots(name, config)


def test_data_root_check_names_missing_path(tmp_path):
    config = {"downstream_expert": {"datarc": {"root": str(tmp_path), "meta_data": str(tmp_path / "nope")}}}
    with pytest.raises(ConfigError, match=r"datarc.meta_data = .*nope: path does not exist"):
        check_data_roots("emotion", config)
    (tmp_path / "nope").mkdir()
    check_data_roots("emotion", config)


def test_run_downstream_reports_the_key(capsys):
    from s3prl_emoaware.cli.main import main

    assert main(["run-downstream", "-m", "train", "-u", "fbank", "-d", "emotion", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "downstream_expert.datarc.root is not set" in err
    assert "-o" in err


@pytest.fixture
def toy_downstream():
    """A downstream registered once, here: its data key, audio files, label option and scoring rule."""
    from pathlib import Path

    from s3prl_emoaware.downstreams import registry
    from s3prl_emoaware.downstreams.scoring import Score

    def audio_files(config):
        return sorted(Path(config["downstream_expert"]["datarc"]["root"]).glob("*.wav"))

    def score(expdir):
        path = Path(expdir) / "toy_score.txt"
        return [Score("acc", float(path.read_text()))] if path.is_file() else []

    spec = registry.register(
        registry.DownstreamSpec(
            name="toy_task",
            data_keys=("downstream_expert.datarc.root",),
            audio_files=audio_files,
            score=score,
            label_fraction_key="downstream_expert.datarc.fraction",
        )
    )
    yield spec
    registry.unregister("toy_task")


def test_a_downstream_registered_once_is_seen_by_validator_leaderboard_and_runner(toy_downstream, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from s3prl_emoaware import leaderboard
    from s3prl_emoaware.cli.main import main
    from s3prl_emoaware.corpora.validate import check_downstream_audio
    from s3prl_emoaware.s3prl_adapters import runner

    corpus = tmp_path / "toy"
    corpus.mkdir()
    for name in ("a", "b"):
        sf.write(str(corpus / f"{name}.wav"), np.zeros(1600, dtype=np.float32), 16000)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("runner: {total_steps: 1}\ndownstream_expert:\n  datarc: {root: SET_ME__TOY}\n")

    # run-downstream: the data key of the spec is resolved and checked before anything starts
    assert main(["run-downstream", "-m", "train", "-u", "fbank", "-d", "toy_task", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "downstream_expert.datarc.root is not set for -d toy_task" in err
    override = f"config.downstream_expert.datarc.root='{corpus}'"
    argv, flags = runner.prepare_argv(["-m", "train", "-d", "toy_task", "-c", str(cfg), "-o", override])
    assert flags.config == str(cfg) and argv.count("-c") == 1
    labelled = runner.with_label_fraction(["-d", "toy_task", "-o", override], 0.5)
    assert runner.effective_config(cfg, runner.scan_flags(labelled).override)["downstream_expert"]["datarc"] == {
        "root": str(corpus),
        "fraction": 0.5,
    }

    # the validator reads the spec's audio files, at its rate policy (no resampling: another rate is refused)
    config = runner.effective_config(cfg, override)
    assert check_downstream_audio("toy_task", config) == 2
    sf.write(str(corpus / "c.wav"), np.zeros(800, dtype=np.float32), 8000)
    assert main(["run-downstream", "-m", "train", "-u", "fbank", "-d", "toy_task", "-c", str(cfg), "-o", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(corpus / "c.wav") in err and "8000 Hz" in err

    # the leaderboard scores its experiment folders with the spec's rule
    exp = tmp_path / "runs" / "toy"
    exp.mkdir(parents=True)
    (exp / "args_2026-01-01-00-00-00.yaml").write_text(
        yaml.dump({"mode": "train", "upstream": "fbank", "downstream": "toy_task", "seed": 1})
    )
    (exp / "toy_score.txt").write_text("0.625")
    table = leaderboard.aggregate(leaderboard.collect([tmp_path / "runs"]))
    assert table == {"fbank": {"toy_task/acc": {"mean": 0.625, "std": 0.0, "n": 1}}}
