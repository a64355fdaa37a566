"""Contrastive method: losses, pairs, clustering analysis, batches, and the whole chain to an upstream."""

import json

import numpy as np
import pytest
import torch

from s3prl_emoaware.cli.main import main
from s3prl_emoaware.config import load_config, shipped_config
from s3prl_emoaware.contrastive.clustering import ClusteringConfig, cluster_per_speaker, cluster_report, purity
from s3prl_emoaware.contrastive.losses import GradientReversal, pair_masks, supervised_contrastive, triplet
from s3prl_emoaware.contrastive.tasks import random_crops
from s3prl_emoaware.pretraining.run import pretrain
from s3prl_emoaware.pretraining.trainer import PretrainRecipe
from s3prl_emoaware.utils.errors import UserFacingError


def test_pairs_and_losses_reward_cluster_structure():
    spk = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    clu = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    positive, allowed = pair_masks(spk, clu)
    assert positive[0].tolist() == [False, True, False, False, False, False, False, False]
    assert allowed[0].tolist() == [False, True, True, True, False, False, False, False]  # same speaker only
    _, allowed_all = pair_masks(spk, clu, "all")
    assert allowed_all[0].sum() == 7
    centres = torch.randn(4, 16)
    good = centres[(spk * 2 + clu)] + 0.01 * torch.randn(8, 16)  # utterances sit at their cluster centre
    bad = torch.randn(8, 16)
    for loss in (
        lambda e: supervised_contrastive(e, positive, allowed, 0.1),
        lambda e: triplet(e, positive, allowed, 0.2),
    ):
        assert loss(good) < loss(bad)
    x = torch.ones(3, requires_grad=True)
    GradientReversal(0.5)(x).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.5))


def test_per_speaker_clustering_finds_emotions_that_global_clustering_misses():
    rng = np.random.default_rng(0)
    emb, spk, emo = [], [], []
    for s in range(4):
        offset = rng.normal(size=8) * 5  # speakers far apart: global k-means clusters speakers
        for e in range(2):
            for _ in range(10):
                emb.append(offset + np.eye(8)[e] * 1.5 + rng.normal(scale=0.1, size=8))
                spk.append(f"s{s}"), emo.append(["neu", "ang"][e])
    cfg = ClusteringConfig(k=2, min_utterances=4)
    clusters, ks, skipped = cluster_per_speaker(np.array(emb), spk, cfg)
    assert not skipped and set(ks.values()) == {2}
    report = cluster_report(np.array(emb), spk, emo, clusters, ks)["overall"]
    assert report["per_speaker_kmeans"]["purity"] == pytest.approx(1.0)
    assert report["per_speaker_kmeans"]["nmi"] > report["global_kmeans"]["nmi"] + 0.5
    assert report["per_speaker_kmeans"]["nmi"] > report["random"]["nmi"] + 0.5
    auto, ks_auto, _ = cluster_per_speaker(np.array(emb), spk, ClusteringConfig(k=0, min_utterances=4))
    assert set(ks_auto.values()) == {2}  # silhouette finds the two emotions
    _, _, skipped = cluster_per_speaker(np.array(emb)[:25], spk[:25], ClusteringConfig(k=2, min_utterances=8))
    assert "s1" in skipped and "5 utterances" in skipped["s1"]
    assert purity([0, 0, 1, 1], ["a", "b", "b", "b"]) == 0.75


def test_random_crops_take_one_window_inside_each_utterance():
    feats = torch.zeros(3, 10, 2)
    lengths = torch.tensor([10, 7, 3])
    for i, n in enumerate(lengths.tolist()):
        feats[i, :n, 0] = torch.arange(n, dtype=torch.float32) + 1  # frame index + 1, 0 in padding
    same, same_lengths = random_crops(feats, lengths, 0, np.random.default_rng(0))
    assert same is feats and same_lengths is lengths
    crops, new_lengths = random_crops(feats, lengths, 4, np.random.default_rng(0))
    assert crops.shape == (3, 4, 2) and new_lengths.tolist() == [4, 4, 3]
    for i, n in enumerate(new_lengths.tolist()):
        window = crops[i, :n, 0]
        assert torch.all(window[1:] - window[:-1] == 1)  # contiguous frames of the same utterance
        assert window[0] >= 1 and window[-1] <= lengths[i]  # never reaches into padding
    assert crops[2, :3, 0].tolist() == [1, 2, 3]  # shorter than the window: kept whole
    again, _ = random_crops(feats, lengths, 4, np.random.default_rng(0))
    assert torch.equal(crops, again)  # the trainer's step-seeded rng makes crops reproducible
    starts = {int(random_crops(feats, lengths, 4, np.random.default_rng(s))[0][0, 0, 0]) for s in range(20)}
    assert len(starts) > 1


@pytest.mark.slow
def test_speaker_encoder_clusters_contrastive_pretraining_and_upstream(tiny_iemocap, tmp_path):
    assert (
        main(
            [
                "train-speaker",
                "--corpus",
                str(tiny_iemocap),
                "--out",
                str(tmp_path / "spk"),
                "-c",
                str(shipped_config("upstream_configs", "ecapa_speaker_tiny")),
                "-o",
                "training.total_steps=4",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "cluster",
                "--corpus",
                str(tiny_iemocap),
                "--encoder",
                str(tmp_path / "spk" / "last.ckpt"),
                "--out",
                str(tmp_path / "cl"),
                "-k",
                "2",
                "--min-utterances",
                "4",
            ]
        )
        == 0
    )
    assignments = json.loads((tmp_path / "cl" / "assignments.json").read_text())
    report = json.loads((tmp_path / "cl" / "report.json").read_text())
    assert set(report["overall"]) == {"per_speaker_kmeans", "global_kmeans", "random"}
    assert (tmp_path / "cl" / "embeddings.png").read_bytes()[:4] == b"\x89PNG"
    recipe_file = shipped_config("upstream_configs", "emo_ecapa_tiny")
    for n, variant in enumerate(
        [
            [],
            ["objective.speaker_weight=0.5"],
            ["objective.adversarial_weight=0.5"],
            ["objective.loss=triplet", "objective.negatives=all"],
        ]
    ):
        recipe = load_config(
            PretrainRecipe,
            recipe_file,
            [
                f"objective.clusters={tmp_path / 'cl' / 'assignments.json'}",
                f"objective.init_from={tmp_path / 'spk' / 'last.ckpt'}",
                "training.total_steps=3",
                *variant,
            ],
        )
        trainer, history = pretrain(recipe, tiny_iemocap, tmp_path / f"con{n}", None)
        assert len(history) == 3 and all(np.isfinite(l) for _, l in history)
        # every batch: P speakers x K clusters x M utterances, positives exist for every anchor
        batch = trainer.task.epoch_batches(trainer.items, 8, 0, 0)[0]
        spk = [trainer.items[i].speaker for i in batch]
        clu = [assignments["clusters"][trainer.items[i].utt_id] for i in batch]
        assert len(batch) == 4 * 2 * 2 and all(
            sum(1 for s, c in zip(spk, clu) if (s, c) == key) >= 2 for key in zip(spk, clu)
        )
    # a speaker encoder trained on other features is refused, naming the file and the field
    mismatched = load_config(
        PretrainRecipe,
        recipe_file,
        [
            f"objective.clusters={tmp_path / 'cl' / 'assignments.json'}",
            f"objective.init_from={tmp_path / 'spk' / 'last.ckpt'}",
            "frontend.cmvn_std=true",
        ],
    )
    with pytest.raises(
        UserFacingError, match=r"spk/last.ckpt: incompatible.*frontend.cmvn_std: False there, True here"
    ):
        pretrain(mismatched, tiny_iemocap, tmp_path / "refused", None)
    assert not (tmp_path / "refused").exists()
    import s3prl_emoaware

    s3prl_emoaware.register()
    import s3prl.hub

    upstream = s3prl.hub.emo_ecapa_local(ckpt=str(tmp_path / "con0" / "last.ckpt")).eval()
    with torch.no_grad():
        out = upstream([torch.randn(16000), torch.randn(12000)])
    states = out["hidden_states"]
    assert len(states) == 4 and all(s.shape == (2, 98, 32) for s in states)
    assert upstream.get_downsample_rates("hidden_states") == 160
    # the pooled embedding the contrastive objective trains, repeated over each utterance's frames
    # (`-s utterance_embedding`): mean pooling over the real frames gives the encoder's embedding
    wavs = [torch.randn(16000), torch.randn(12000)]
    with torch.no_grad():
        out = upstream(wavs)
        alone = [upstream.encoder(*upstream.frontend([w]))[0][0] for w in wavs]
    emb = out["utterance_embedding"]
    assert emb.shape == (2, 98, 32) and torch.equal(out["last_hidden_state"], out["hidden_states"][-1])
    assert torch.allclose(emb[0].mean(0), alone[0], atol=1e-5) and torch.allclose(emb[1, :73].mean(0), alone[1])
    assert emb[1, 73:].abs().max() == 0 and not torch.allclose(alone[0], alone[1])


def _clusters_by_arousal(corpus, path):
    """Assignments file as `s3prl-emoaware cluster` writes it (here: low / high arousal, 2 per speaker)."""
    from s3prl_emoaware.corpora.reader import read_corpus

    codes = {"neu": 0, "sad": 0, "hap": 1, "ang": 1}
    path.write_text(
        json.dumps({"clusters": {u.utt_id: codes[u.emotion] for u in read_corpus(corpus) if u.emotion in codes}})
    )
    return path


@pytest.mark.parametrize(
    "config,extra",
    [("ecapa_speaker_tiny", ["objective.crop_frames=60"]), ("emo_ecapa_tiny", ["objective.speaker_weight=0.5"])],
)
def test_ecapa_objectives_resume_exactly(tiny_iemocap, tmp_path, config, extra):
    """Random crops and P x K x M batches come from the step, so a cut-and-resumed run repeats the losses."""
    overrides = [*extra, "training.total_steps=4"]
    if config == "emo_ecapa_tiny":
        overrides.append(f"objective.clusters={_clusters_by_arousal(tiny_iemocap, tmp_path / 'clusters.json')}")
    recipe = load_config(PretrainRecipe, shipped_config("upstream_configs", config), overrides)
    _, full = pretrain(recipe, tiny_iemocap, tmp_path / "full", None)
    _, first = pretrain(recipe, tiny_iemocap, tmp_path / "cut", None, stop_at=2)
    _, rest = pretrain(recipe, tiny_iemocap, tmp_path / "cut", None, resume=True)
    assert [s for s, _ in first + rest] == [1, 2, 3, 4]
    assert [round(v, 5) for _, v in first + rest] == [round(v, 5) for _, v in full]


@pytest.mark.slow
def test_contrastive_pretraining_under_torchrun(tiny_iemocap, tmp_path):
    import subprocess

    from subprocess_env import PYTHON, child_env

    clusters = _clusters_by_arousal(tiny_iemocap, tmp_path / "clusters.json")
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29733",
            "-m",
            "s3prl_emoaware.cli",
            "pretrain",
            "-c",
            str(shipped_config("upstream_configs", "emo_ecapa_tiny")),
            "--corpus",
            str(tiny_iemocap),
            "--out",
            str(tmp_path / "ddp"),
            "-o",
            "training.total_steps=3",
            "-o",
            f"objective.clusters={clusters}",
            "-o",
            "objective.adversarial_weight=0.5",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ddp" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["kind"] == "ecapa_contrastive"
    assert not any(k.startswith("module.") for k in ckpt["model"])
