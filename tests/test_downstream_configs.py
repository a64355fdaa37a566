"""Shipped SUPERB configs and the data-root check."""

import pytest
import yaml

from s3prl_emoaware.config import ConfigError, shipped_config
from s3prl_emoaware.downstreams.data_roots import DATA_ROOT_KEYS, check_data_roots

RUNNER_KEYS = {"total_steps", "gradient_clipping", "gradient_accumulate_steps", "log_step", "eval_step",
               "save_step", "max_keep", "eval_dataloaders"}


@pytest.mark.parametrize("name", ["emotion", "fluent_commands", "phoneme_recognition", "emotion_cremad",
                                  "emotion_esd", "emotion_ravdess"])
def test_shipped_configs_are_complete(name):
    config = yaml.safe_load(shipped_config("downstream_configs", name).read_text())
    assert RUNNER_KEYS <= set(config["runner"])
    assert config["optimizer"]["name"] == "TorchOptim"
    with pytest.raises(ConfigError, match=f"{DATA_ROOT_KEYS[name][0]} is not set"):
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
