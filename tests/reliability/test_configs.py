"""Bad configs and overrides at every command that reads one: one line naming the file or override and the key.

Each probe runs the real command (in-process through ``cli.main.main``, a few as a subprocess) and
asserts the exit status 2, the one ``s3prl-emoaware: error:`` line with the file or ``-o`` override
and the key in it, and that no traceback is printed. Every one fails while the config is read,
before any corpus is opened, so the corpora given are empty folders.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from subprocess_env import PYTHON, child_env

from s3prl_emoaware.config import shipped_config

from .cli_lines import assert_one_line as _assert_one_line
from .cli_lines import run_cli as _cli

MJ_TINY = shipped_config("upstream_configs", "ems_mockingjay_tiny")
SN_TINY = shipped_config("upstream_configs", "strengthnet_tiny")
SPK_TINY = shipped_config("upstream_configs", "ecapa_speaker_tiny")
MARKER = "code_ran.txt"


def _pretrain(tmp_path: Path, config, *overrides: str):
    argv = ["pretrain", "-c", config, "--corpus", tmp_path, "--out", tmp_path / "exp"]
    for item in overrides:
        argv += ["-o", item]
    return argv


RANGE = {  # override -> the key the message must name
    "masking.mask_ratio=2": "mask_ratio",
    "masking.mask_ratio=0": "mask_ratio",
    "masking.span=0": "span",
    "training.total_steps=0": "total_steps",
    "training.total_steps=-5": "total_steps",
    "training.batch_size=-1": "batch_size",
    "training.lr=0": "lr",
    "training.lr=-1e-4": "lr",
    "training.accumulate=0": "accumulate",
    "training.warmup_proportion=1.5": "warmup_proportion",
    "training.max_frames=0": "max_frames",
    "frontend.num_mel_bins=0": "num_mel_bins",
    "frontend.frame_shift_ms=0": "frame_shift_ms",
    "frontend.frame_length_ms=-25": "frame_length_ms",
    "frontend.sample_rate=0": "sample_rate",
    "frontend.window_type=hann": "window_type",
}


@pytest.mark.probe(
    area="config",
    probe="pretrain -o {override} (value out of range)",
    behaviour="exit 2, one line naming the override and the key, no traceback",
)
@pytest.mark.parametrize("override", sorted(RANGE))
def test_pretrain_override_out_of_range(tmp_path, capsys, override):
    line = _assert_one_line(
        *_cli(capsys, _pretrain(tmp_path, MJ_TINY, override)), f"-o {override}", RANGE[override], MJ_TINY.name
    )
    assert "must be" in line


WRONG_TYPE = {
    "training.total_steps=abc": "total_steps: expected an integer",
    "training.batch_size=true": "batch_size: expected an integer",
    "masking.speech_only=3": "speech_only: expected true or false",
    "training.lr=[1, 2]": "lr: expected a number",
    "masking=3": "masking: expected a mapping",
    "training.lr=.nan": "lr: expected a finite number",
    "kind=7": "kind: expected a string",
}


@pytest.mark.probe(
    area="config",
    probe="pretrain -o {override} (value of the wrong type)",
    behaviour="exit 2, one line naming the override, the key and the type expected",
)
@pytest.mark.parametrize("override", sorted(WRONG_TYPE))
def test_pretrain_override_wrong_type(tmp_path, capsys, override):
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, MJ_TINY, override)), f"-o {override}", WRONG_TYPE[override])


@pytest.mark.probe(
    area="config",
    probe="pretrain -o with a typo in the key ({override})",
    behaviour="exit 2, one line naming the override, the unknown key and the closest known one",
)
@pytest.mark.parametrize(
    "override,hint",
    [
        ("masking.mask_ratoi=0.3", "did you mean mask_ratio?"),
        ("training.totl_steps=3", "did you mean total_steps?"),
        ("trainig.lr=0.1", "did you mean training?"),
    ],
)
def test_pretrain_override_typo(tmp_path, capsys, override, hint):
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, MJ_TINY, override)), f"-o {override}", "unknown key", hint)


@pytest.mark.probe(
    area="config",
    probe="pretrain -o {override!r} (unparsable override)",
    behaviour="exit 2, one line naming the override and what is wrong with it",
)
@pytest.mark.parametrize(
    "override,problem",
    [
        ("training.lr=[1,", "not valid YAML"),
        ("training.lr", "expected KEY=VALUE"),
        ("=3", "empty or blank part"),
        ("training..lr=3", "empty or blank part"),
        ("masking.span={a: 1, a: 2}", "duplicated key"),
    ],
)
def test_pretrain_override_unparsable(tmp_path, capsys, override, problem):
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, MJ_TINY, override)), f"-o {override}", problem)


BAD_FILES = {
    "malformed": ("training:\n  lr: [0.1\nmasking: {}\n", "not valid YAML: line"),
    "empty": ("# nothing but a comment\n", "the config is empty"),
    "list": ("- a\n- b\n", "top level must be a mapping"),
    "duplicated": ("kind: npc\nkind: mockingjay\n", "duplicated key 'kind'"),
    "unknown_key": ("kind: mockingjay\nmaskin:\n  mask_ratio: 0.2\n", "unknown key(s) maskin (did you mean masking?)"),
    "nested_unknown": ("masking:\n  mask_ration: 0.2\n", "masking: unknown key(s) mask_ration"),
    "out_of_range": ("masking:\n  mask_ratio: 1.5\n", "masking: mask_ratio must be in (0, 1)"),
    "string_number": ("training:\n  total_steps: ten\n", "training.total_steps: expected an integer"),
    "section_scalar": ("training: 5\n", "training: expected a mapping"),
    "not_utf8": (b"kind: \xff\xfe\n", "not a text file"),
}


@pytest.mark.probe(
    area="config",
    probe="pretrain -c a YAML file that is {id}",
    behaviour="exit 2, one line naming the file and the key or line, no traceback",
)
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_pretrain_bad_config_file(tmp_path, capsys, name):
    text, problem = BAD_FILES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, path)), str(path), problem)


@pytest.mark.probe(
    area="config", probe="a config path that is missing, or a folder", behaviour="exit 2, one line naming the path"
)
def test_config_path_missing_or_a_folder(tmp_path, capsys):
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, tmp_path / "nope.yaml")), "nope.yaml", "not found")
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, tmp_path)), str(tmp_path), "is a folder")


@pytest.mark.probe(
    area="config",
    probe="a YAML tag !!python/object/apply:os.system in a config file and in an -o value",
    behaviour="exit 2, one line naming the file (the override) and the tag; nothing is constructed, "
    "the command never runs",
)
def test_yaml_python_tag_is_never_constructed(tmp_path, capsys):
    marker = tmp_path / MARKER
    path = tmp_path / "evil.yaml"
    path.write_text(f"kind: !!python/object/apply:os.system ['touch {marker}']\n")
    _assert_one_line(
        *_cli(capsys, _pretrain(tmp_path, path)), str(path), "YAML tag !!python/object/apply:os.system", "not allowed"
    )
    override = f"training.lr=!!python/object/apply:os.system ['touch {marker}']"
    _assert_one_line(*_cli(capsys, _pretrain(tmp_path, MJ_TINY, override)), "-o training.lr=", "not allowed")
    assert not marker.exists()


@pytest.mark.probe(
    area="config",
    probe="pretrain -o masking.mask_ratio=2 and a !!python tag, as a new process",
    behaviour="exit 2, stderr is one line naming the override (the file) and the key, no traceback",
)
def test_pretrain_subprocess(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text(f"kind: !!python/object/apply:os.system ['touch {tmp_path / MARKER}']\n")
    for argv, names in (
        (_pretrain(tmp_path, MJ_TINY, "masking.mask_ratio=2"), ("-o masking.mask_ratio=2", "mask_ratio")),
        (_pretrain(tmp_path, path), (str(path), "!!python/object")),
    ):
        out = subprocess.run(
            [PYTHON, "-m", "s3prl_emoaware.cli", *map(str, argv)],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=300,
        )
        _assert_one_line(out.returncode, out.stderr, *names)
        assert out.stderr.strip().count("\n") == 0, out.stderr
    assert not (tmp_path / MARKER).exists()


@pytest.mark.probe(
    area="config", probe="{command} -o {override}", behaviour="exit 2, one line naming the override and the key"
)
@pytest.mark.parametrize(
    "command,override,key",
    [
        ("train-strengthnet", "training.epochs=0", "epochs"),
        ("train-strengthnet", "training.lr=-0.1", "lr"),
        ("train-strengthnet", "training.batch_size=0", "batch_size"),
        ("train-strengthnet", "training.val_speaker_fraction=1", "val_speaker_fraction"),
        ("train-strengthnet", "training.emotional_floor=2", "emotional_floor"),
        ("train-strengthnet", "model.n_melz=40", "did you mean n_mels?"),
        ("train-strengthnet", "training.epochs=many", "epochs: expected an integer"),
        ("train-speaker", "training.lr=-1", "lr"),
        ("train-speaker", "training.batch_size=abc", "batch_size"),
        ("train-speaker", "training.save_every=0", "save_every"),
        ("train-speaker", "frontend.delta_order=3", "delta_order"),
    ],
)
def test_trainer_bad_override(tmp_path, capsys, command, override, key):
    config = SN_TINY if command == "train-strengthnet" else SPK_TINY
    argv = [command, "--corpus", tmp_path, "--out", tmp_path / "exp", "-c", config, "-o", override]
    _assert_one_line(*_cli(capsys, argv), f"-o {override}", key)


@pytest.mark.probe(
    area="config",
    probe="{command} -o {override}",
    behaviour="exit 2, one line naming the override (over the job's config) and the key",
)
@pytest.mark.parametrize(
    "command,override,key",
    [
        ("demo", "foldz=2", "did you mean folds?"),
        ("demo", "folds=abc", "folds: expected an integer"),
        ("ems-study", "seeds=3", "seeds: expected a list"),
        ("ems-study", "seedss=[0]", "did you mean seeds?"),
        ("ser-study", "corpora=5", "corpora"),
        ("ser-study", "seed=x", "seed: expected an integer"),
    ],
)
def test_staged_job_bad_override(tmp_path, capsys, command, override, key):
    argv = [command, "--quick", "--out", tmp_path / "job", "-o", override]
    _assert_one_line(*_cli(capsys, argv), f"-o {override}", key)


@pytest.mark.probe(
    area="config",
    probe="demo -o with a typo in the key, as a new process",
    behaviour="exit 2, stderr is one line naming the override and the closest key",
)
def test_demo_typo_subprocess(tmp_path):
    out = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", "demo", "--quick", "--out", str(tmp_path / "d"), "-o", "foldz=2"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
    )
    _assert_one_line(out.returncode, out.stderr, "-o foldz=2", "did you mean folds?")


@pytest.mark.probe(
    area="config",
    probe="intensity --batch-size 0; config upstream with an unknown name",
    behaviour="exit 2, one line naming the option (the name and the available ones)",
)
def test_intensity_and_config_commands(tmp_path, capsys):
    argv = ["intensity", "--corpus", tmp_path, "--out", tmp_path / "c", "--source", "energy", "--batch-size", "0"]
    _assert_one_line(*_cli(capsys, argv), "batch size", "0")
    _assert_one_line(
        *_cli(capsys, ["config", "upstream", "ems_mockingjay_tinny"]),
        "ems_mockingjay_tinny",
        "available",
        "ems_mockingjay_tiny",
    )


def _run_downstream(tmp_path: Path, *extra):
    roots = "config.downstream_expert.datarc.root='/tmp',,config.downstream_expert.datarc.meta_data='/tmp'"
    return [
        "run-downstream",
        "-m",
        "train",
        "-u",
        "emoaware_fbank",
        "-d",
        "emotion",
        "-n",
        "probe",
        "-p",
        tmp_path / "exp",
        "--skip-audio-check",
        "-o",
        roots,
        *extra,
    ]


@pytest.mark.probe(
    area="config",
    probe="run-downstream -c a malformed YAML / one with a !!python/object tag",
    behaviour="exit 2, one line naming the file and the line (the tag); nothing constructed, the runner never starts",
)
def test_run_downstream_bad_config_file(tmp_path, capsys):
    bad, evil = tmp_path / "bad.yaml", tmp_path / "evil.yaml"
    bad.write_text("downstream_expert:\n  datarc: [1,\n")
    evil.write_text(f"a: !!python/object/apply:os.system ['touch {tmp_path / MARKER}']\n")
    _assert_one_line(*_cli(capsys, _run_downstream(tmp_path, "-c", bad)), str(bad), "not valid YAML: line")
    _assert_one_line(*_cli(capsys, _run_downstream(tmp_path, "-c", evil)), str(evil), "!!python/object", "not allowed")
    assert not (tmp_path / MARKER).exists()


@pytest.mark.probe(
    area="config",
    probe="run-downstream --hidden-cache-limit-gb {value}",
    behaviour="exit 2, one line naming the option; the runner never starts",
)
@pytest.mark.parametrize("value", ["0", "-3", "inf", "nan"])
def test_run_downstream_hidden_cache_limit(tmp_path, capsys, value):
    _assert_one_line(
        *_cli(capsys, _run_downstream(tmp_path, "--hidden-cache-limit-gb", value)),
        "--hidden-cache-limit-gb must be > 0",
    )


@pytest.mark.probe(
    area="config",
    probe="run-downstream --hidden-cache-memory-gb {value}",
    behaviour="exit 2, one line naming the option; the runner never starts",
)
@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
def test_run_downstream_hidden_cache_memory(tmp_path, capsys, value):
    _assert_one_line(
        *_cli(capsys, _run_downstream(tmp_path, "--hidden-cache-memory-gb", value)),
        "--hidden-cache-memory-gb must be >= 0",
    )


@pytest.mark.probe(
    area="config",
    probe="cluster {flag} {value} (out of range)",
    behaviour="exit 2, one line naming the setting, before any embedding is computed",
)
@pytest.mark.parametrize(
    "flag,value,key", [("-k", "-1", "k must be >= 0"), ("--min-utterances", "0", "min_utterances must be >= 1")]
)
def test_cluster_settings_out_of_range(tmp_path, capsys, flag, value, key):
    argv = ["cluster", "--corpus", tmp_path, "--encoder", tmp_path / "none.ckpt", "--out", tmp_path / "cl", flag, value]
    _assert_one_line(*_cli(capsys, argv), key)
