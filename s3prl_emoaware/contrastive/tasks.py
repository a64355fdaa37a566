"""Objectives for the shared trainer: speaker encoder (AAM-softmax) and the contrastive SER encoder.

The contrastive batches are P speakers x K of their clusters x M utterances per cluster
(:meth:`ContrastiveTask.epoch_batches`), so every anchor has positives (same speaker and
cluster) and negatives (same speaker, other clusters; optionally other speakers).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..checkpoints import encoder_state, load_weights, read_checkpoint, require
from ..config import from_dict, to_dict
from ..models.ecapa import EcapaConfig, EcapaTdnn
from ..utils.errors import UserFacingError
from .losses import GradientReversal, aam_softmax_logits, pair_masks, supervised_contrastive, triplet

__all__ = [
    "SpeakerObjective",
    "ContrastiveObjective",
    "MULTITASK_COMBINE",
    "multitask_weights",
    "SpeakerTask",
    "ContrastiveTask",
    "EcapaWithHeads",
    "random_crops",
]


class EcapaWithHeads(nn.Module):
    """ECAPA encoder plus an optional speaker head (AAM weight matrix or linear classifier)."""

    def __init__(self, config: EcapaConfig, n_speakers: int = 0, reversal: Optional[float] = None):
        super().__init__()
        self.encoder = EcapaTdnn(config)
        self.speaker_weight = nn.Parameter(torch.randn(n_speakers, config.embedding_dim) * 0.01) if n_speakers else None
        self.reversal = GradientReversal(reversal) if reversal is not None else None

    def forward(self, feats: Tensor, lengths: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self.encoder(feats, lengths)


@dataclass
class SpeakerObjective:
    """AAM-softmax speaker classification (ECAPA's training objective).

    Args:
        margin, scale: of the AAM softmax.
        crop_frames: train on a random crop of this many frames per utterance (0 = whole
            utterances). Speaker-verification recipes train ECAPA on 2-3 s random crops; on
            small corpora with few sentences, whole-utterance training lets the embedding
            memorise the text, and then intra-speaker clusters follow sentences, not emotions.
    """

    margin: float = 0.2
    scale: float = 30.0
    crop_frames: int = 0


MULTITASK_COMBINE = ("sum", "alternate", "balanced")


def multitask_weights(combine: str, speaker_weight: float, warmup_steps: int, step: int) -> Tuple[float, float]:
    """(weight of L_con, weight of the speaker CE) at optimizer ``step`` (0-based); ``balanced``
    returns lambda itself, the caller scales it by L_con / CE."""
    ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    lam = speaker_weight * ramp
    if combine == "alternate":
        return (1.0, 0.0) if step % 2 == 0 else (0.0, lam)
    return 1.0, lam


@dataclass
class ContrastiveObjective:
    """Args:
    clusters: JSON of ``s3prl-emoaware cluster`` (utt_id -> speaker cluster); required.
    loss: ``supcon`` (InfoNCE / supervised contrastive) or ``triplet``.
    temperature: of supcon.
    margin: of triplet.
    negatives: ``same_speaker`` (the method) or ``all`` (other speakers too).
    speakers_per_batch, clusters_per_speaker, utterances_per_cluster: P x K x M.
    speaker_weight: lambda of the multi-task speaker classification (0 = off).
    combine: how the multi-task losses meet (the paper says only "multi-task"):
        ``sum`` (L_con + lambda * CE every step), ``alternate`` (even steps L_con, odd steps
        lambda * CE) or ``balanced`` (L_con + lambda * CE * L_con / CE, the ratio not
        differentiated: the speaker term's gradient is scaled to the contrastive loss's size).
    speaker_warmup_steps: lambda ramps linearly from 0 over these steps (0 = full from step 1).
    adversarial_weight: alpha of the gradient-reversed speaker head (0 = off).
    init_from: speaker-encoder checkpoint to start from (null = random init).
    """

    clusters: str = ""
    loss: str = "supcon"
    temperature: float = 0.1
    margin: float = 0.2
    negatives: str = "same_speaker"
    speakers_per_batch: int = 4
    clusters_per_speaker: int = 2
    utterances_per_cluster: int = 2
    speaker_weight: float = 0.0
    combine: str = "sum"
    speaker_warmup_steps: int = 0
    adversarial_weight: float = 0.0
    init_from: Optional[str] = None

    def __post_init__(self):
        if self.loss not in ("supcon", "triplet"):
            raise ValueError(f"objective.loss must be supcon or triplet, got {self.loss!r}")
        if self.combine not in MULTITASK_COMBINE:
            raise ValueError(f"objective.combine must be one of {MULTITASK_COMBINE}, got {self.combine!r}")
        if self.speaker_warmup_steps < 0:
            raise ValueError(f"objective.speaker_warmup_steps must be >= 0, got {self.speaker_warmup_steps}")
        if self.speaker_weight and self.adversarial_weight:
            raise ValueError("choose multi-task (speaker_weight) or adversarial (adversarial_weight), not both")


def random_crops(feats: Tensor, lengths: Tensor, frames: int, rng) -> Tuple[Tensor, Tensor]:
    """One random window of ``frames`` frames per utterance (shorter ones kept whole).

    ``feats``: (B, T, D) zero-padded, ``lengths``: (B,); ``rng``: numpy Generator (the
    trainer derives it from the step, so crops are reproducible on resume).
    Returns (B, T', D) and the new lengths.
    """
    if frames <= 0:
        return feats, lengths
    starts = [int(rng.integers(0, max(1, int(n) - frames + 1))) for n in lengths.tolist()]
    new_lengths = torch.clamp(lengths, max=frames)
    out = feats.new_zeros(feats.shape[0], int(new_lengths.max()), feats.shape[2])
    for i, (start, n) in enumerate(zip(starts, new_lengths.tolist())):
        out[i, :n] = feats[i, start : start + n]
    return out, new_lengths


def _speaker_index(items) -> Dict[str, int]:
    speakers = sorted({it.speaker for it in items})
    if None in speakers or len(speakers) < 2:
        raise UserFacingError("speaker labels are needed (at least two speakers)")
    return {s: i for i, s in enumerate(speakers)}


class _EcapaTask:
    needs_intensity = False
    needs_items = True

    def __init__(self, model: dict, feature_dim: int):
        model = dict(model)
        model.setdefault("input_dim", feature_dim)
        self.config = from_dict(EcapaConfig, model, "model")
        if self.config.input_dim != feature_dim:
            raise ValueError(f"model.input_dim {self.config.input_dim} != front-end feature dimension {feature_dim}")

    def model_config(self) -> dict:
        return to_dict(self.config)


class SpeakerTask(_EcapaTask):
    kind = "ecapa_speaker"

    def __init__(self, model: dict, feature_dim: int, objective: dict = None):
        super().__init__(model, feature_dim)
        self.objective = from_dict(SpeakerObjective, objective or {}, "objective")

    def build_model(self, items) -> nn.Module:
        self.speaker_index = _speaker_index(items)
        return EcapaWithHeads(self.config, len(self.speaker_index))

    def loss(self, model, batch, rng):
        module = getattr(model, "module", model)
        feats, lengths = random_crops(batch.features, batch.lengths, self.objective.crop_frames, rng)
        emb, _ = model(feats, lengths.to(feats.device))
        labels = torch.tensor([self.speaker_index[s] for s in batch.speakers], device=emb.device)
        logits = aam_softmax_logits(emb, module.speaker_weight, labels, self.objective.margin, self.objective.scale)
        loss = nn.functional.cross_entropy(logits, labels)
        return loss, {"aam_ce": loss.item(), "acc": (logits.argmax(1) == labels).float().mean().item()}


class ContrastiveTask(_EcapaTask):
    kind = "ecapa_contrastive"

    def __init__(self, model: dict, feature_dim: int, objective: dict = None):
        super().__init__(model, feature_dim)
        self.objective = from_dict(ContrastiveObjective, objective or {}, "objective")
        if not self.objective.clusters:
            raise UserFacingError(
                "objective.clusters is not set: run `s3prl-emoaware cluster` and pass --clusters OUT/assignments.json"
            )
        path = Path(self.objective.clusters)
        if not path.is_file():
            raise UserFacingError(f"{path}: cluster assignments not found (objective.clusters)")
        self.assignments: Dict[str, int] = {u: int(c) for u, c in json.loads(path.read_text())["clusters"].items()}

    def build_model(self, items) -> nn.Module:
        o = self.objective
        self.speaker_index = _speaker_index(items)
        n = len(self.speaker_index) if (o.speaker_weight or o.adversarial_weight) else 0
        model = EcapaWithHeads(self.config, n, o.adversarial_weight if o.adversarial_weight else None)
        if o.init_from:
            kinds = ("ecapa_speaker", "ecapa_contrastive")
            ckpt = read_checkpoint(o.init_from, kinds)
            require(ckpt, ("model",), o.init_from, kinds[0])
            load_weights(model.encoder, encoder_state(ckpt["model"]), o.init_from, kinds[0])
        return model

    def epoch_batches(self, items, batch_size, seed, epoch, rank=0, world=1) -> List[List[int]]:
        """P speakers x K clusters x M utterances; only clustered utterances take part."""
        o = self.objective
        rng = random.Random(seed * 100003 + epoch)
        groups: Dict[str, Dict[int, List[int]]] = {}
        for i, it in enumerate(items):
            c = self.assignments.get(it.utt_id, -1)
            if c >= 0:
                groups.setdefault(it.speaker, {}).setdefault(c, []).append(i)
        usable = {s: {c: v for c, v in g.items() if len(v) >= o.utterances_per_cluster} for s, g in groups.items()}
        usable = {s: g for s, g in usable.items() if len(g) >= min(2, o.clusters_per_speaker)}
        if len(usable) < 1:
            raise UserFacingError("no speaker has enough clustered utterances for a contrastive batch")
        n_batches = max(
            1,
            sum(len(v) for g in usable.values() for v in g.values())
            // (o.speakers_per_batch * o.clusters_per_speaker * o.utterances_per_cluster),
        )
        speakers = sorted(usable)
        batches = []
        for _ in range(n_batches):
            batch = []
            for spk in rng.sample(speakers, min(o.speakers_per_batch, len(speakers))):
                clusters = rng.sample(sorted(usable[spk]), min(o.clusters_per_speaker, len(usable[spk])))
                for c in clusters:
                    batch += rng.sample(usable[spk][c], o.utterances_per_cluster)
            batches.append(batch)
        count = (len(batches) // world) * world or len(batches)
        return batches[:count][rank::world]

    def loss(self, model, batch, rng):
        o = self.objective
        module = getattr(model, "module", model)
        emb, _ = model(batch.features, batch.lengths.to(batch.features.device))
        device = emb.device
        spk = torch.tensor([self.speaker_index[s] for s in batch.speakers], device=device)
        clusters = torch.tensor([self.assignments[u] for u in batch.utt_ids], device=device)
        positive, allowed = pair_masks(spk, clusters, o.negatives)
        if o.loss == "supcon":
            loss = supervised_contrastive(emb, positive, allowed, o.temperature)
        else:
            loss = triplet(emb, positive, allowed, o.margin)
        logs = {"contrastive": loss.item()}
        if module.speaker_weight is not None:
            head_in = module.reversal(emb) if module.reversal is not None else emb
            ce = nn.functional.cross_entropy(aam_softmax_logits(head_in, module.speaker_weight, spk, 0.0, 30.0), spk)
            logs["speaker_ce"] = ce.item()
            if module.reversal is not None:  # adversarial: alpha sits in the reversal layer
                return loss + ce, logs
            # the trainer sets .step before each loss; a task used on its own is at step 0
            w_con, w_spk = multitask_weights(
                o.combine, o.speaker_weight, o.speaker_warmup_steps, getattr(self, "step", 0)
            )
            if o.combine == "balanced":
                w_spk = w_spk * loss.detach() / ce.detach().clamp(min=1e-8)
            loss = w_con * loss + w_spk * ce
        return loss, logs
