"""checkpoints/: old files still load, untrained checkpoints equal a trainer's, one encoder contract."""

from types import SimpleNamespace

import pytest
import torch

from s3prl_emoaware.checkpoints import kind_of, load_encoder, read_checkpoint, save_untrained
from s3prl_emoaware.checkpoints.s3prl_mockingjay import to_s3prl_checkpoint
from s3prl_emoaware.config import load_config, shipped_config, to_dict
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.masking.spans import MaskingConfig
from s3prl_emoaware.models.ecapa import EcapaConfig, EcapaTdnn
from s3prl_emoaware.models.mockingjay import MockingjayConfig, MockingjayForPretraining
from s3prl_emoaware.models.npc import NPCConfig, NPCModel
from s3prl_emoaware.pretraining.trainer import PretrainRecipe, TrainingConfig

SPEAKERS = [SimpleNamespace(speaker=s) for s in ("a", "b")]


def _recipe(name):
    return load_config(PretrainRecipe, shipped_config("upstream_configs", name))


def test_a_checkpoint_in_the_format_written_before_the_package_still_loads(tmp_path):
    """The dict literally as the trainer wrote it before checkpoints/ existed (PR 15's first commit)."""
    cfg, fbank = (
        MockingjayConfig(input_dim=240, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64),
        FbankConfig(delta_order=2),
    )
    model = MockingjayForPretraining(cfg)
    optimizer = torch.optim.AdamW(model.parameters())
    old = {
        "format": "s3prl_emoaware",
        "kind": "mockingjay",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {},
        "step": 7,
        "config": {
            "frontend": to_dict(fbank),
            "model": to_dict(cfg),
            "masking": to_dict(MaskingConfig()),
            "objective": {},
            "training": to_dict(TrainingConfig()),
            "kind": "mockingjay",
        },
    }
    torch.save(old, tmp_path / "old.ckpt")
    encoder, loaded_fbank = load_encoder(tmp_path / "old.ckpt", "mockingjay")
    assert loaded_fbank == fbank and not encoder.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, model.state_dict()[f"encoder.{key}"])


def test_untrained_checkpoint_equals_what_a_trainer_saves(tiny_iemocap, tmp_path):
    from s3prl_emoaware.corpora.reader import read_corpus
    from s3prl_emoaware.pretraining.data import build_dataset
    from s3prl_emoaware.pretraining.tasks import build_task
    from s3prl_emoaware.pretraining.trainer import Trainer

    recipe = _recipe("ecapa_speaker_tiny")
    dataset = build_dataset(read_corpus(tiny_iemocap), recipe.frontend)
    task = build_task(recipe.kind, recipe.model, recipe.masking, recipe.frontend.feature_dim, recipe.objective)
    Trainer(task, dataset, recipe, tmp_path / "trainer").save()
    save_untrained(recipe, dataset.entries, tmp_path / "direct" / "last.ckpt")
    a = torch.load(tmp_path / "trainer" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "direct" / "last.ckpt", weights_only=True)
    assert list(a) == list(b) == ["format", "kind", "model", "optimizer", "scheduler", "step", "config"]
    assert a["config"] == b["config"] and a["optimizer"] == b["optimizer"] and a["scheduler"] == b["scheduler"]
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_every_kind_is_recognised_by_its_content(tmp_path):
    for name, kind in (
        ("ems_mockingjay_tiny", "mockingjay"),
        ("ems_npc_tiny", "npc"),
        ("ecapa_speaker_tiny", "ecapa_speaker"),
    ):
        path = save_untrained(_recipe(name), SPEAKERS, tmp_path / f"{kind}.ckpt")
        assert kind_of(read_checkpoint(path, (kind,))) == kind
    ours = torch.load(tmp_path / "mockingjay.ckpt", weights_only=True)
    exported = to_s3prl_checkpoint(
        ours["model"], MockingjayConfig(**ours["config"]["model"]), FbankConfig(**ours["config"]["frontend"])
    )
    assert kind_of(exported) == "s3prl_mockingjay"
    assert kind_of({"model": {}, "config": {"n_mels": 80, "dense_dim": 257}}) == "strengthnet"
    assert kind_of({"blocks.0.conv.conv.weight": torch.zeros(1)}) == "speechbrain_ecapa"
    assert kind_of([1, 2]).startswith("a list") and kind_of({"x": 1}).startswith("an unknown dict")


@pytest.mark.parametrize(
    "build",
    [
        lambda: (
            MockingjayForPretraining(
                MockingjayConfig(
                    input_dim=8, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=16, frame_stack=2
                )
            ).encoder
        ),
        lambda: NPCModel(NPCConfig(input_dim=8, hidden_size=16, n_blocks=2, vq_codebook_sizes=[4], vq_code_dims=[16])),
        lambda: EcapaTdnn(
            EcapaConfig(
                input_dim=8,
                channels=[16, 16, 16, 16, 48],
                attention_channels=8,
                res2net_scale=4,
                se_channels=8,
                embedding_dim=8,
            )
        ),
    ],
    ids=["mockingjay", "npc", "ecapa"],
)
def test_one_encoder_contract(build):
    torch.manual_seed(0)
    encoder = build().eval()
    feats, lengths = torch.randn(2, 20, 8), torch.tensor([20, 13])
    with torch.no_grad():
        states, out_lengths = encoder.extract_features(feats, lengths)
    r = encoder.frame_stack
    assert torch.equal(out_lengths, lengths // r) and encoder.min_frames >= r
    assert all(s.dim() == 3 and s.shape[:2] == (2, 20 // r) for s in states) and len(states) >= 2
    if encoder.masks_padding:  # what lies beyond an utterance is zero, and the batch does not matter
        assert all(s[1, 13 // r :].abs().max() == 0 for s in states)
        alone, _ = encoder.extract_features(feats[1:, :13], lengths[1:])
        assert all(torch.allclose(s[1, : 13 // r], a[0], atol=1e-5) for s, a in zip(states, alone))
