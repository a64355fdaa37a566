"""YAML -> dataclass mapping: defaults, overrides, clear errors, shipped configs."""

from dataclasses import dataclass, field
from typing import List, Optional

import pytest

from s3prl_emoaware.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    shipped_config,
    shipped_config_dir,
    to_dict,
)
from s3prl_emoaware.features import FbankConfig


@dataclass
class Inner:
    size: int = 4
    rate: float = 0.5


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    layers: List[int] = field(default_factory=lambda: [1, 2])
    extra: Optional[float] = None


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner:\n  size: 8\n")
    cfg = load_config(Outer, path, ["inner.rate=1", "extra=0.25"])
    assert cfg == Outer(name="y", inner=Inner(size=8, rate=1.0), layers=[1, 2], extra=0.25)
    assert isinstance(cfg.inner.rate, float)
    assert to_dict(cfg) == {"name": "y", "inner": {"size": 8, "rate": 1.0}, "layers": [1, 2], "extra": 0.25}


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  sise: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: inner: unknown key\(s\) sise \(did you mean size\?\)"):
        load_config(Outer, path)


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="size: expected an integer"):
        from_dict(Inner, {"size": "big"})


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["oops"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_shipped_upstream_config_loads():
    assert shipped_config_dir("upstream_configs").is_dir()
    cfg = load_config(FbankConfig, shipped_config("upstream_configs", "emoaware_fbank"))
    assert cfg.num_mel_bins == 80 and cfg.hop_samples == 160
    with pytest.raises(ConfigError, match="available"):
        shipped_config("upstream_configs", "does_not_exist")


def test_out_of_range_value_is_one_line_naming_the_override_file_and_key(tmp_path):
    import subprocess

    from subprocess_env import PYTHON, child_env

    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    path = shipped_config("upstream_configs", "ems_mockingjay_tiny")
    with pytest.raises(
        ConfigError,
        match=r"^-o masking.mask_ratio=2 \(over .*ems_mockingjay_tiny.yaml\): masking: mask_ratio must be in \(0, 1\)",
    ):
        load_config(PretrainRecipe, path, ["masking.mask_ratio=2"])
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "s3prl_emoaware.cli",
            "pretrain",
            "-c",
            str(path),
            "--corpus",
            str(tmp_path),
            "--out",
            str(tmp_path / "x"),
            "-o",
            "masking.mask_ratio=2",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "mask_ratio must be in (0, 1)" in out.stderr


def test_file_fixed_by_an_override_is_valid_and_blame_goes_to_the_first_bad_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  size: big\n")
    assert load_config(Outer, path, ["inner.size=3"]).inner.size == 3  # only the result must be valid
    with pytest.raises(ConfigError, match=r"^.*c.yaml: inner.size: expected an integer, got 'big'$"):
        load_config(Outer, path)
    path.write_text("name: y\n")
    with pytest.raises(ConfigError, match=r"^-o inner.rate=x \(over .*c.yaml\): inner.rate: expected a number"):
        load_config(Outer, path, ["inner.size=2", "inner.rate=x", "inner.size=y"])


def test_coercions_are_strict_but_read_numbers_as_people_write_them():
    assert from_dict(Inner, {"rate": "1e-4"}).rate == 1e-4  # YAML 1.1 reads 1e-4 as a string
    assert from_dict(Inner, {"size": 4.0}).size == 4
    for data, problem in (
        ({"size": True}, "size: expected an integer"),
        ({"rate": "fast"}, "rate: expected a number"),
        ({"rate": float("inf")}, "rate: expected a finite number"),
        ({"size": 4.5}, "size: expected an integer"),
    ):
        with pytest.raises(ConfigError, match=problem):
            from_dict(Inner, data)
    with pytest.raises(ConfigError, match=r"layers: expected a list, got 3"):
        from_dict(Outer, {"layers": 3})
    with pytest.raises(ConfigError, match=r"layers\[1\]: expected an integer"):
        from_dict(Outer, {"layers": [1, "two"]})


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "the config is empty"),
        ("a: 1\na: 2\n", "duplicated key 'a'"),
        ("- 1\n", "top level must be a mapping"),
        ("a: !!python/name:os.system\n", "YAML tag !!python/name:os.system is not allowed"),
        ("a: [1\n", "not valid YAML: line 2"),
    ],
)
def test_yaml_problems_are_one_line_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as err:
        load_config(Outer, path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
