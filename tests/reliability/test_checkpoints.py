"""Bad checkpoints at every load site, and bad input at every registered upstream's forward.

Checkpoints are made in milliseconds without training (``save_untrained``: the state a trainer
writes before step 1), then damaged. Every refusal must be one line that names the file, the
kind expected and what was found; a pickle that carries code must never run it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from s3prl_emoaware.checkpoints import CheckpointError, load_encoder, load_strengthnet, save_untrained
from s3prl_emoaware.checkpoints.s3prl_mockingjay import to_s3prl_checkpoint
from s3prl_emoaware.checkpoints.s3prl_npc import to_s3prl_npc
from s3prl_emoaware.cli.main import main
from s3prl_emoaware.config import from_dict, load_config, shipped_config, to_dict
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.models.mockingjay import MockingjayConfig
from s3prl_emoaware.models.npc import NPCConfig
from s3prl_emoaware.models.strengthnet import strengthnet_tiny
from s3prl_emoaware.pretraining.trainer import PretrainRecipe

RECIPES = {"mockingjay": "ems_mockingjay_tiny", "npc": "ems_npc_tiny", "ecapa": "ecapa_speaker_tiny"}
UPSTREAMS = {"mockingjay": "ems_mockingjay_local", "npc": "ems_npc_local", "ecapa": "emo_ecapa_local"}
SPEAKERS = [SimpleNamespace(speaker=s) for s in ("a", "b", "c")]
MARKER = "code_ran.txt"


def _recipe(family: str, *overrides) -> PretrainRecipe:
    return load_config(PretrainRecipe, shipped_config("upstream_configs", RECIPES[family]), list(overrides))


def _ours(tmp_path: Path, family: str) -> Path:
    path = tmp_path / f"{family}.ckpt"
    if not path.exists():
        save_untrained(_recipe(family), SPEAKERS, path)
    return path


def _strengthnet(tmp_path: Path) -> Path:
    """A StrengthNet checkpoint as ``train-strengthnet`` writes it."""
    model = strengthnet_tiny()
    path = tmp_path / "strengthnet.ckpt"
    torch.save(
        {
            "model": model.state_dict(),
            "config": to_dict(model.config),
            "epoch": 0,
            "val_loss": 1.0,
            "train_speakers": ["a"],
            "val_speakers": ["b"],
        },
        path,
    )
    return path


def _s3prl(tmp_path: Path, family: str) -> Path:
    ckpt = torch.load(_ours(tmp_path, family), weights_only=True)
    fbank = from_dict(FbankConfig, ckpt["config"]["frontend"])
    if family == "mockingjay":
        out = to_s3prl_checkpoint(ckpt["model"], from_dict(MockingjayConfig, ckpt["config"]["model"]), fbank)
    else:
        out = to_s3prl_npc(ckpt["model"], from_dict(NPCConfig, ckpt["config"]["model"]), fbank)
    path = tmp_path / f"{family}_s3prl.ckpt"
    torch.save(out, path)
    return path


class _RunsCode:
    """Unpickling this calls ``open(MARKER, "w")``: what a hostile checkpoint could do."""

    def __init__(self, where: str):
        self.where = where

    def __reduce__(self):
        return (open, (self.where, "w"))


def _bad_file(tmp_path: Path, what: str) -> Path:
    path = tmp_path / "bad.ckpt"
    if what == "missing":
        return tmp_path / "no_such.ckpt"
    if what == "directory":
        path.mkdir()
    elif what == "empty":
        path.write_bytes(b"")
    elif what == "truncated":
        data = _ours(tmp_path, "mockingjay").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif what == "text":
        path.write_text("these are not the weights you are looking for\n")
    elif what == "pickled_code":
        with open(path, "wb") as f:
            pickle.dump({"model": _RunsCode(str(tmp_path / MARKER))}, f)
    elif what == "torch_pickled_code":  # the same, inside torch's zip format
        torch.save({"format": "s3prl_emoaware", "kind": "mockingjay", "model": _RunsCode(str(tmp_path / MARKER))}, path)
    return path


FOUND = {
    "missing": "no such file",
    "directory": "a directory",
    "empty": "an empty file (0 bytes)",
    "truncated": "a truncated or corrupt torch file",
    "text": "a file that is not a torch checkpoint",
    "pickled_code": "a pickle that weights-only loading refuses",
    "torch_pickled_code": "a pickle that carries code or objects (GLOBAL io.open)",
}


def _sites(tmp_path: Path):
    """load site -> (callable on a path, expected kinds as the message names them)."""
    import s3prl.hub

    import s3prl_emoaware

    s3prl_emoaware.register()
    return {
        "upstream": (lambda p: s3prl.hub.ems_mockingjay_local(ckpt=str(p)), "mockingjay or s3prl_mockingjay"),
        "clustering_encoder": (
            lambda p: load_encoder(p, "ecapa"),
            "ecapa_speaker or ecapa_contrastive or speechbrain_ecapa",
        ),
        "strengthnet": (load_strengthnet, "strengthnet"),
    }


@pytest.mark.probe(
    area="checkpoints",
    probe="{what} checkpoint given to the {site} load site",
    behaviour="one CheckpointError line naming the file, the kind expected and '{what}' found; "
    "a pickle's code never runs",
)
@pytest.mark.parametrize("site", ["upstream", "clustering_encoder", "strengthnet"])
@pytest.mark.parametrize("what", list(FOUND))
def test_bad_checkpoint_files_are_one_line(tmp_path, what, site):
    path = _bad_file(tmp_path, what)
    load, kinds = _sites(tmp_path)[site]
    with pytest.raises(CheckpointError) as err:
        load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: expected checkpoint kind {kinds}, found ")
    assert FOUND[what] in message
    assert not (tmp_path / MARKER).exists()


@pytest.mark.probe(
    area="checkpoints",
    probe="{what} checkpoint given to `export`",
    behaviour="exit 2, one stderr line naming the file and the kinds; nothing written",
)
@pytest.mark.parametrize("what", list(FOUND))
def test_export_refuses_bad_files_in_one_line(tmp_path, capsys, what):
    path = _bad_file(tmp_path, what)
    assert main(["export", str(path), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "expected checkpoint kind mockingjay or npc" in err
    assert FOUND[what] in err
    assert not (tmp_path / "out.ckpt").exists() and not (tmp_path / MARKER).exists()


@pytest.mark.probe(
    area="checkpoints",
    probe="a checkpoint that pickles code, at pre-training resume",
    behaviour="one CheckpointError line; the code never runs",
)
def test_resume_never_runs_pickled_code(tiny_iemocap, tmp_path):
    from s3prl_emoaware.pretraining.run import pretrain

    out = tmp_path / "run"
    out.mkdir()
    (out / "last.ckpt").write_bytes(_bad_file(tmp_path, "torch_pickled_code").read_bytes())
    with pytest.raises(CheckpointError, match=r"last.ckpt: expected checkpoint kind mockingjay, found a pickle"):
        pretrain(_recipe("mockingjay", "masking.strategy=random"), tiny_iemocap, out, None, resume=True)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.probe(
    area="checkpoints",
    probe="StrengthNet checkpoint as a pre-training resume",
    behaviour="one line: expected kind mockingjay, found kind strengthnet; no step run",
)
def test_strengthnet_into_pretraining_resume(tiny_iemocap, tmp_path):
    from s3prl_emoaware.pretraining.run import pretrain

    out = tmp_path / "run"
    out.mkdir()
    (out / "last.ckpt").write_bytes(_strengthnet(tmp_path).read_bytes())
    with pytest.raises(CheckpointError, match="expected checkpoint kind mockingjay, found kind strengthnet$"):
        pretrain(_recipe("mockingjay", "masking.strategy=random"), tiny_iemocap, out, None, resume=True)
    assert not list(out.glob("states-*.ckpt"))


WRONG_KIND = [
    ("npc", "ems_mockingjay_local", "mockingjay or s3prl_mockingjay", "kind npc"),
    ("mockingjay", "ems_npc_local", "npc or s3prl_npc", "kind mockingjay"),
    ("s3prl_npc", "ems_mockingjay_local", "mockingjay or s3prl_mockingjay", "kind s3prl_npc"),
    ("s3prl_mockingjay", "ems_npc_local", "npc or s3prl_npc", "kind s3prl_mockingjay"),
    ("strengthnet", "emo_ecapa_local", "ecapa_speaker or ecapa_contrastive or speechbrain_ecapa", "kind strengthnet"),
    ("ecapa", "ems_mockingjay_local", "mockingjay or s3prl_mockingjay", "kind ecapa_speaker"),
]


def _kind_file(tmp_path: Path, kind: str) -> Path:
    if kind == "strengthnet":
        return _strengthnet(tmp_path)
    if kind.startswith("s3prl_"):
        return _s3prl(tmp_path, kind[len("s3prl_") :])
    return _ours(tmp_path, kind)


@pytest.mark.probe(
    area="checkpoints",
    probe="a {given} checkpoint given to upstream {upstream}",
    behaviour="one line: expected {expected}, found {found}",
)
@pytest.mark.parametrize("given,upstream,expected,found", WRONG_KIND)
def test_wrong_kind_into_an_upstream(tmp_path, given, upstream, expected, found):
    import s3prl.hub

    import s3prl_emoaware

    s3prl_emoaware.register()
    path = _kind_file(tmp_path, given)
    with pytest.raises(CheckpointError) as err:
        getattr(s3prl.hub, upstream)(ckpt=str(path))
    assert str(err.value) == f"{path}: expected checkpoint kind {expected}, found {found}"


@pytest.mark.probe(
    area="checkpoints",
    probe="an s3prl-format Mockingjay checkpoint given to `export` (ours expected)",
    behaviour="exit 2: expected kind mockingjay or npc, found kind s3prl_mockingjay",
)
def test_s3prl_format_into_export(tmp_path, capsys):
    path = _s3prl(tmp_path, "mockingjay")
    assert main(["export", str(path), str(tmp_path / "out.ckpt")]) == 2
    assert "expected checkpoint kind mockingjay or npc, found kind s3prl_mockingjay" in capsys.readouterr().err


@pytest.mark.probe(
    area="checkpoints",
    probe="a Mockingjay checkpoint as the contrastive objective.init_from",
    behaviour="one line: expected kind ecapa_speaker or ecapa_contrastive, found kind mockingjay",
)
def test_wrong_kind_as_init_from(tmp_path):
    from s3prl_emoaware.pretraining.run import check_init_compatible

    recipe = load_config(PretrainRecipe, shipped_config("upstream_configs", "emo_ecapa_tiny"))
    path = _ours(tmp_path, "mockingjay")
    with pytest.raises(
        CheckpointError,
        match="expected checkpoint kind ecapa_speaker or ecapa_contrastive, "
        r"found kind mockingjay \(objective.init_from\)",
    ):
        check_init_compatible(recipe, path)


def _damaged(tmp_path: Path, family: str, how: str) -> Path:
    ckpt = torch.load(_ours(tmp_path, family), weights_only=True)
    first = next(k for k in ckpt["model"] if k.startswith("encoder.") or family == "npc")
    if how == "missing_entry":
        del ckpt["config"]
    elif how == "missing_tensor":
        del ckpt["model"][first]
    elif how == "wrong_shape":
        ckpt["model"][first] = torch.zeros(3, 5)
    elif how == "config_disagrees":
        key = {"mockingjay": "hidden_size", "npc": "hidden_size", "ecapa": "embedding_dim"}[family]
        ckpt["config"]["model"][key] *= 2
        if family == "npc":  # keep the config self-consistent: only the weights disagree
            ckpt["config"]["model"]["vq_code_dims"] = [2 * d for d in ckpt["config"]["model"]["vq_code_dims"]]
    elif how == "frontend_disagrees":
        ckpt["config"]["frontend"]["num_mel_bins"] = 40
    elif how == "unknown_config_key":
        ckpt["config"]["model"]["hiden_size"] = 8
    path = tmp_path / f"{family}_{how}.ckpt"
    torch.save(ckpt, path)
    return path


DAMAGE = {
    "missing_entry": "found one without key 'config.model'",
    "missing_tensor": "found missing 1 key(s)",
    "wrong_shape": "wrong-shaped tensor(s)",
    "config_disagrees": "wrong-shaped tensor(s)",
    "frontend_disagrees": "found input_dim",
    "unknown_config_key": "unknown key(s) hiden_size",
}


@pytest.mark.probe(
    area="checkpoints",
    probe="{family} checkpoint with {how}",
    behaviour="one CheckpointError line naming the file, the kind and the key or shape at fault",
)
@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize("family", ["mockingjay", "npc", "ecapa"])
def test_damaged_checkpoints_name_what_is_wrong(tmp_path, family, how):
    path = _damaged(tmp_path, family, how)
    with pytest.raises(CheckpointError) as err:
        load_encoder(path, family)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: expected checkpoint kind ")
    assert DAMAGE[how] in message


@pytest.mark.probe(
    area="checkpoints",
    probe="StrengthNet checkpoint with a tensor of the wrong shape",
    behaviour="one line naming the tensor, its shape in the file and by the config",
)
def test_strengthnet_wrong_shape(tmp_path):
    path = _strengthnet(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["dense.weight"] = torch.zeros(2, 2)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"dense.weight \(2, 2\) in the file, \(27, 80\) by its config"):
        load_strengthnet(path)


# --- forward probes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    import s3prl.hub

    import s3prl_emoaware

    s3prl_emoaware.register()
    root = tmp_path_factory.mktemp("up")
    return {f: getattr(s3prl.hub, UPSTREAMS[f])(ckpt=str(_ours(root, f))).eval() for f in UPSTREAMS}


BAD_WAVES = {
    "empty_batch": ([], "empty batch"),
    "zero_samples": ([torch.zeros(0)], "waveform 0 has 0 samples; the minimum is"),
    "shorter_than_a_window": ([torch.randn(16000), torch.randn(300)], "waveform 1 has 300 samples; the minimum is"),
    "nan_samples": ([torch.full((16000,), float("nan"))], "waveform 0 has NaN or Inf samples"),
    "stereo": ([torch.randn(2, 16000)], "waveform 0 has shape (2, 16000)"),
}


@pytest.mark.probe(
    area="upstream forward",
    probe="{family} upstream given {case}",
    behaviour="ValueError naming the upstream, the waveform and the length / minimum",
)
@pytest.mark.parametrize("case", list(BAD_WAVES))
@pytest.mark.parametrize("family", list(UPSTREAMS))
def test_forward_refuses_unusable_waveforms(upstreams, family, case):
    wavs, text = BAD_WAVES[case]
    with pytest.raises(ValueError) as err:
        upstreams[family](wavs)
    assert str(err.value).startswith(UPSTREAMS[family].replace("_local", "") + ": ") and text in str(err.value)


@pytest.mark.probe(
    area="upstream forward",
    probe="{family} upstream: the shortest accepted clip and one sample less",
    behaviour="min_samples works (finite states), min_samples - 1 is a ValueError, never a shape error",
)
@pytest.mark.parametrize("family", list(UPSTREAMS))
def test_forward_minimum_length_is_exact(upstreams, family):
    up = upstreams[family]
    states = up([torch.randn(up.min_samples) * 0.1])["hidden_states"]
    assert all(torch.isfinite(s).all() for s in states)
    with pytest.raises(ValueError, match=f"has {up.min_samples - 1} samples; the minimum is {up.min_samples}"):
        up([torch.randn(up.min_samples - 1)])


@pytest.mark.probe(
    area="upstream forward",
    probe="{family} upstream whose weights hold a NaN",
    behaviour="ValueError naming the upstream and the waveforms; no NaN hidden state returned",
)
@pytest.mark.parametrize("family", list(UPSTREAMS))
def test_forward_never_returns_nan_silently(tmp_path, family):
    import s3prl.hub

    import s3prl_emoaware

    s3prl_emoaware.register()
    up = getattr(s3prl.hub, UPSTREAMS[family])(ckpt=str(_ours(tmp_path, family))).eval()
    with torch.no_grad():
        next(up.encoder.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match=UPSTREAMS[family].replace("_local", "") + r": non-finite hidden states"):
        up([torch.randn(16000) * 0.1, torch.randn(12000) * 0.1])
