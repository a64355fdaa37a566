"""Pre-training: safe checkpoints, exact resume, DDP under torchrun, export to s3prl, stock runner use."""

import subprocess

import pytest
import torch
from subprocess_env import PYTHON, child_env, stock_runner

from s3prl_emoaware.config import load_config, shipped_config
from s3prl_emoaware.intensity.extract import extract_intensities
from s3prl_emoaware.pretraining.run import pretrain
from s3prl_emoaware.pretraining.trainer import PretrainRecipe
from s3prl_emoaware.utils.errors import UserFacingError

TINY = shipped_config("upstream_configs", "ems_mockingjay_tiny")


@pytest.fixture(scope="module")
def energy_cache(tiny_iemocap, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache") / "energy"
    extract_intensities(tiny_iemocap, cache, source="energy")
    return cache


def _recipe(*overrides):
    return load_config(PretrainRecipe, TINY, list(overrides))


def test_resume_continues_the_exact_loss_sequence(tiny_iemocap, energy_cache, tmp_path):
    _, full = pretrain(_recipe(), tiny_iemocap, tmp_path / "full", str(energy_cache))
    _, first = pretrain(_recipe(), tiny_iemocap, tmp_path / "cut", str(energy_cache), stop_at=3)
    _, rest = pretrain(_recipe(), tiny_iemocap, tmp_path / "cut", str(energy_cache), resume=True)
    assert [s for s, _ in first + rest] == list(range(1, 7))
    assert [round(l, 6) for _, l in first + rest] == [round(l, 6) for _, l in full]
    ckpt = torch.load(tmp_path / "full" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["kind"] == "mockingjay" and ckpt["config"]["masking"]["strategy"] == "ems"
    assert list((tmp_path / "full").glob("events.out.tfevents.*"))


def test_random_and_ems_masking_differ_and_ems_needs_intensity(tiny_iemocap, energy_cache, tmp_path):
    _, ems = pretrain(_recipe(), tiny_iemocap, tmp_path / "ems", str(energy_cache), stop_at=2)
    _, rnd = pretrain(_recipe("masking.strategy=random"), tiny_iemocap, tmp_path / "rnd", None, stop_at=2)
    assert ems[0][1] != rnd[0][1]
    with pytest.raises(UserFacingError, match="needs intensities"):
        pretrain(_recipe(), tiny_iemocap, tmp_path / "x", None)


def test_resume_refuses_an_incompatible_checkpoint(tiny_iemocap, tmp_path):
    pretrain(_recipe("masking.strategy=random"), tiny_iemocap, tmp_path / "a", None, stop_at=1)
    with pytest.raises(UserFacingError, match="incompatible checkpoint"):
        pretrain(
            _recipe("masking.strategy=random", "model.hidden_size=16"), tiny_iemocap, tmp_path / "a", None, resume=True
        )


@pytest.mark.slow
def test_ddp_two_processes_on_gloo(tiny_iemocap, energy_cache, tmp_path):
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29731",
            "-m",
            "s3prl_emoaware.cli",
            "pretrain",
            "-c",
            str(TINY),
            "--corpus",
            str(tiny_iemocap),
            "--intensity",
            str(energy_cache),
            "--out",
            str(tmp_path / "ddp"),
            "-o",
            "training.total_steps=4",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ddp" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 4
    assert not any(k.startswith("module.") for k in ckpt["model"])


@pytest.mark.slow
def test_pretrained_upstream_in_stock_runner_and_export(tiny_iemocap, energy_cache, tmp_path):
    pretrain(_recipe(), tiny_iemocap, tmp_path / "pt", str(energy_cache))
    ckpt = tmp_path / "pt" / "last.ckpt"
    exported = tmp_path / "s3prl_mockingjay.ckpt"
    ex = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", "export", "--format", "s3prl", str(ckpt), str(exported)],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert ex.returncode == 0, ex.stderr
    override = (
        "config.runner.total_steps=2,,config.runner.eval_step=1,,config.runner.save_step=1,,"
        "config.runner.log_step=1,,config.runner.gradient_accumulate_steps=1,,"
        f"config.downstream_expert.datarc.root='{tiny_iemocap}',,"
        f"config.downstream_expert.datarc.meta_data='{tiny_iemocap / 'meta_data'}',,"
        "config.downstream_expert.datarc.num_workers=0"
    )
    for upstream, k, env in (
        ("ems_mockingjay", None, child_env(S3PRL_EMOAWARE_HOME=str(tmp_path / "home"))),
        ("mockingjay_local", exported, child_env()),
    ):
        if k is None:
            (tmp_path / "home").mkdir()
            (tmp_path / "home" / "ems_mockingjay.ckpt").write_bytes(ckpt.read_bytes())
        args = [
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
            str(tmp_path / upstream),
            "--device",
            "cpu",
        ] + (["-k", str(k)] if k else [])
        stock_runner(*args, cwd=tmp_path, env=env)
        assert (tmp_path / upstream / "test_fold1_predict.txt").is_file()


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "model.hiden_size=16",
            r"model: unknown key\(s\) hiden_size \(did you mean hidden_size\?\) for MockingjayConfig",
        ),
        ("model.num_heads=5", "model: hidden_size 32 is not a multiple of num_heads 5"),
        ("objective.variant=none", "objective: mockingjay pre-training takes no objective settings"),
        ("kind=mockingjy", "unknown pre-training kind 'mockingjy'"),
    ],
)
def test_recipe_model_and_objective_are_typed_when_loaded(override, message):
    from s3prl_emoaware.config import ConfigError

    with pytest.raises(ConfigError, match=message) as err:
        _recipe(override)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"-o {override} (over {TINY})")
    recipe = load_config(PretrainRecipe, shipped_config("upstream_configs", "ems_npc_tiny"))
    assert recipe.model_config.hidden_size == 16 and recipe.model_config.input_dim == recipe.frontend.feature_dim
    assert recipe.objective_config.variant == "input_mask" and _recipe().objective_config is None
