"""Pre-training objectives that plug into the generic trainer.

A task builds its model from the recipe and turns a :class:`~.data.Batch` into a loss. The
trainer knows nothing model-specific; a new model (NPC, ECAPA) is a new task.

Every masking task logs, per step, what its masks spend and where (``mask/fraction``,
``mask/top_quartile_share`` when intensities are loaded, ``mask/coverage``: the share of the
frames seen so far that were masked at least once since the run (or its resume) started).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..config import from_dict, to_dict
from ..masking.spans import MaskCoverage, MaskingConfig, batch_masks, corrupt, mask_statistics, speech_frames
from ..models.mockingjay import MockingjayConfig, MockingjayForPretraining
from ..models.npc import NPCConfig, NPCModel
from .data import Batch

__all__ = [
    "MockingjayTask",
    "NPCObjective",
    "NPCTask",
    "TASKS",
    "build_task",
    "recipe_sections",
    "task_needs_intensity",
    "normalised_intensity",
]


class _MaskingTask:
    """What Mockingjay and NPC share: drawing the batch's masks (with a voice-activity test on
    the static log-mel part of the features for the EMS rule) and logging where they fall."""

    def __init__(self, masking: MaskingConfig, static_dim: int):
        self.masking, self.static_dim = masking, static_dim
        self.coverage = MaskCoverage()

    def _speech(self, batch: Batch) -> Optional[List[np.ndarray]]:
        if self.masking.strategy != "ems" or not self.masking.speech_only:
            return None
        # mean of the static (log-mel) dims: monotone in frame energy, also after per-band CMVN
        energy = batch.features[..., : self.static_dim].mean(-1).detach().cpu().numpy()
        return [
            speech_frames(energy[i, : int(n)], self.masking.vad_threshold) for i, n in enumerate(batch.lengths.tolist())
        ]

    def draw_masks(self, batch: Batch, rng: np.random.Generator) -> Tuple[Tensor, Dict[str, float]]:
        lengths = batch.lengths.tolist()
        curves = batch.intensities if self.masking.needs_intensity else None
        mask, _ = batch_masks(lengths, batch.features.shape[1], self.masking, rng, curves, self._speech(batch))
        rows = [mask[i, :n].numpy() for i, n in enumerate(lengths)]
        stats = mask_statistics(rows, batch.intensities)
        logs = {f"mask/{'fraction' if k == 'masked_fraction' else k}": v for k, v in stats.items()}
        if batch.utt_ids is not None:
            self.coverage.update(batch.utt_ids, mask, lengths)
            logs["mask/coverage"] = self.coverage.value
        return mask.to(batch.features.device), logs


class MockingjayTask(_MaskingTask):
    """Masked acoustic modelling: reconstruct masked frames (L1 on the masked set).

    ``masking.strategy`` chooses the spans (``random``: Mockingjay's rule; ``ems``: the
    budget-matched intensity-weighted draw; ``ems_topk``: the authors' rule). Optional EMS
    extras of the authors' code: ``model.intensity_input`` adds the intensity to the inputs,
    hidden (zeroed) at the masked frames so it cannot give the answer away;
    ``model.intensity_head`` reconstructs the intensity, scored (L1) on the masked frames like
    the features, summed with equal weight.
    """

    kind = "mockingjay"
    needs_intensity = property(
        lambda self: self.masking.needs_intensity or self.config.intensity_input or self.config.intensity_head
    )

    def __init__(self, model: dict, masking: MaskingConfig, feature_dim: int, static_dim: Optional[int] = None):
        super().__init__(masking, static_dim or feature_dim)
        model = dict(model)
        model.setdefault("input_dim", feature_dim)
        self.config = from_dict(MockingjayConfig, model, "model")
        if self.config.input_dim != feature_dim:
            raise ValueError(f"model.input_dim {self.config.input_dim} != front-end feature dimension {feature_dim}")
        if self.config.frame_stack != 1:
            raise ValueError("pre-training with frame_stack > 1 is not supported; use frame_stack: 1")

    def build_model(self) -> nn.Module:
        return MockingjayForPretraining(self.config)

    def model_config(self) -> dict:
        return to_dict(self.config)

    def loss(self, model: nn.Module, batch: Batch, rng: np.random.Generator) -> Tuple[Tensor, Dict[str, float]]:
        feats, lengths = batch.features, batch.lengths
        mask, logs = self.draw_masks(batch, rng)
        inputs = corrupt(feats, lengths.tolist(), mask, self.masking, rng)
        intensity = batch.intensity.to(feats.device) if batch.intensity is not None else None
        shown = intensity.masked_fill(mask, 0.0) if self.config.intensity_input else None
        recon, predicted_intensity, _ = model(inputs, lengths.to(feats.device), shown)
        n_masked = mask.sum()
        if n_masked == 0:  # every utterance shorter than a span: nothing to learn from this batch
            return (recon.sum() * 0.0), {"masked_frames": 0.0, **logs}
        loss = (recon - feats).abs()[mask].mean()
        logs.update({"recon_l1": loss.item(), "masked_frames": float(n_masked)})
        if predicted_intensity is not None:
            intensity_l1 = (predicted_intensity.squeeze(-1) - intensity).abs()[mask].mean()
            loss = loss + intensity_l1
            logs["intensity_l1"] = intensity_l1.item()
        return loss, logs


NPC_VARIANTS = ("none", "input_mask", "loss_weight", "both", "authors")


@dataclass
class NPCObjective:
    """How EMS changes NPC (unknown from the paper; docs/method.md section 1.4). ``variant``:

    - ``none``: plain NPC (the baseline): L1 on every valid frame;
    - ``input_mask``: spans chosen by ``masking`` are zeroed in the input (with ``masking.strategy:
      random`` this is the control at the same budget that credits a gain to the intensity,
      not to the extra masking); the loss stays on all valid frames;
    - ``loss_weight``: the per-frame L1 is weighted by ``1 + intensity_weight * s``, ``s`` the
      intensity normalised per utterance (``weight_scale``: ``minmax`` or ``rank``, both on
      [0, 1]), so the most emotional frames of every utterance count up to ``1 + w`` times the
      least (a raw StrengthNet curve near a constant would make the weight a constant factor);
    - ``both``: input masking and loss weighting together;
    - ``authors``: the EMS authors' official NPC pre-training: the intensity added to the input
      and a second head reconstructing it (L1 on valid frames, summed), no change to the masks.

    ``masked_frame_weight`` (input-masking variants; our addition, 1 = off): the L1 of frames inside
    a zeroed span counts this many times a frame outside. With weight 1 the loss is spread over every
    frame, so where the spans go changes only which frames lose some context (NPC hides a window
    around each predicted frame anyway); above 1 the spans also choose which frames the model must
    learn best, as Mockingjay's loss on masked frames does.
    """

    variant: str = "both"
    intensity_weight: float = 1.0
    weight_scale: str = "minmax"
    masked_frame_weight: float = 1.0

    def __post_init__(self):
        if self.variant not in NPC_VARIANTS:
            raise ValueError(f"objective.variant must be one of {', '.join(NPC_VARIANTS)}, got {self.variant!r}")
        if self.weight_scale not in ("minmax", "rank"):
            raise ValueError(f"objective.weight_scale must be minmax or rank, got {self.weight_scale!r}")
        if self.intensity_weight < 0:
            raise ValueError(f"objective.intensity_weight must be >= 0, got {self.intensity_weight}")
        if self.masked_frame_weight < 1:
            raise ValueError(f"objective.masked_frame_weight must be >= 1, got {self.masked_frame_weight}")
        if self.masked_frame_weight != 1 and self.variant not in ("input_mask", "both"):
            raise ValueError(
                f"objective.masked_frame_weight needs an input-masking variant (input_mask, both), got {self.variant!r}"
            )


def normalised_intensity(intensity: Tensor, lengths: Tensor, how: str = "minmax") -> Tensor:
    """(B, T) intensity -> per-utterance ``minmax`` or ``rank`` scaled to [0, 1] over the valid
    frames (0 on padding; a constant curve gives 0 everywhere)."""
    out = torch.zeros_like(intensity)
    for i, n in enumerate(lengths.tolist()):
        x = intensity[i, :n]
        if n == 0:
            continue
        if how == "rank":
            from scipy.stats import rankdata

            r = rankdata(x.detach().cpu().numpy()) - 1
            out[i, :n] = torch.as_tensor(r / max(1, n - 1), dtype=intensity.dtype, device=intensity.device)
        else:
            lo, hi = x.min(), x.max()
            out[i, :n] = (x - lo) / (hi - lo) if hi - lo > 1e-8 else 0.0
    return out


class NPCTask(_MaskingTask):
    """NPC's L1 frame prediction, with the EMS variants of :class:`NPCObjective`."""

    kind = "npc"

    def __init__(
        self,
        model: dict,
        masking: MaskingConfig,
        feature_dim: int,
        objective: dict = None,
        static_dim: Optional[int] = None,
    ):
        super().__init__(masking, static_dim or feature_dim)
        self.objective = from_dict(NPCObjective, objective or {}, "objective")
        model = dict(model)
        model.setdefault("input_dim", feature_dim)
        if self.objective.variant == "authors":
            for key in ("intensity_input", "intensity_head"):
                if model.setdefault(key, True) is not True:
                    raise ValueError(f"objective.variant 'authors' needs model.{key}: true")
        self.config = from_dict(NPCConfig, model, "model")
        if self.config.input_dim != feature_dim:
            raise ValueError(f"model.input_dim {self.config.input_dim} != front-end feature dimension {feature_dim}")

    @property
    def masks_input(self) -> bool:
        return self.objective.variant in ("input_mask", "both")

    @property
    def needs_intensity(self) -> bool:
        v = self.objective.variant
        return (
            v in ("loss_weight", "both", "authors")
            or (self.masks_input and self.masking.needs_intensity)
            or self.config.intensity_input
            or self.config.intensity_head
        )

    def build_model(self) -> nn.Module:
        return NPCModel(self.config)

    def model_config(self) -> dict:
        return to_dict(self.config)

    def loss(self, model: nn.Module, batch: Batch, rng: np.random.Generator) -> Tuple[Tensor, Dict[str, float]]:
        feats, lengths = batch.features, batch.lengths.to(batch.features.device)
        valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
        inputs, logs, mask = feats, {}, None
        if self.masks_input:
            mask, logs = self.draw_masks(batch, rng)
            inputs = feats.masked_fill(mask[..., None], 0.0)
        intensity = batch.intensity.to(feats.device) if batch.intensity is not None else None
        pred, representation, _ = model(inputs, intensity if self.config.intensity_input else None)
        per_frame = (pred - feats).abs().mean(-1)
        weights = valid.to(feats.dtype)
        if self.objective.variant in ("loss_weight", "both"):
            scaled = normalised_intensity(intensity, lengths, self.objective.weight_scale)
            weights = weights * (1.0 + self.objective.intensity_weight * scaled)
        if mask is not None and self.objective.masked_frame_weight != 1:
            weights = weights * (1.0 + (self.objective.masked_frame_weight - 1.0) * mask.to(weights.dtype))
        loss = (per_frame * weights).sum() / weights.sum()
        logs["l1"] = loss.item()
        if self.config.intensity_head:
            module = getattr(model, "module", model)  # DDP wraps the model
            intensity_l1 = (module.predict_intensity(representation) - intensity).abs()[valid].mean()
            loss = loss + intensity_l1
            logs["intensity_l1"] = intensity_l1.item()
        return loss, logs


TASKS = {"mockingjay": MockingjayTask, "npc": NPCTask}


def recipe_sections(kind: str) -> Tuple[type, Optional[type]]:
    """(model config class, objective class or None) of pre-training ``kind``: what a recipe's
    ``model`` and ``objective`` sections must fill."""
    from ..contrastive.tasks import ContrastiveObjective, EcapaConfig, SpeakerObjective

    sections = {
        "mockingjay": (MockingjayConfig, None),
        "npc": (NPCConfig, NPCObjective),
        "ecapa_speaker": (EcapaConfig, SpeakerObjective),
        "ecapa_contrastive": (EcapaConfig, ContrastiveObjective),
    }
    if kind not in sections:
        raise ValueError(f"unknown pre-training kind {kind!r}; known: {', '.join(sections)}")
    return sections[kind]


def build_task(
    kind: str,
    model: dict,
    masking: MaskingConfig,
    feature_dim: int,
    objective: dict = None,
    static_dim: Optional[int] = None,
):
    """``static_dim``: the leading feature dims that are log-mel bands (without deltas); the EMS
    rule's voice-activity test reads frame energy there (default: all ``feature_dim``)."""
    from ..contrastive.tasks import ContrastiveTask, SpeakerTask

    if kind == "ecapa_speaker":
        return SpeakerTask(model, feature_dim, objective)
    if kind == "ecapa_contrastive":
        return ContrastiveTask(model, feature_dim, objective)
    if kind not in TASKS:
        raise ValueError(
            f"unknown pre-training kind {kind!r}; known: {', '.join([*TASKS, 'ecapa_speaker', 'ecapa_contrastive'])}"
        )
    if kind == "npc":
        return NPCTask(model, masking, feature_dim, objective, static_dim)
    if objective:
        raise ValueError(f"objective settings are not used by {kind!r} pre-training")
    return TASKS[kind](model, masking, feature_dim, static_dim)


def task_from_recipe(recipe):
    """:func:`build_task` for a pre-training recipe (a ``PretrainRecipe``): its kind, model, masking and
    objective on its front-end's feature size, the log-mel bands as the static part."""
    return build_task(
        recipe.kind,
        recipe.model,
        recipe.masking,
        recipe.frontend.feature_dim,
        recipe.objective,
        recipe.frontend.num_mel_bins,
    )


def task_needs_intensity(
    kind: str,
    model: dict,
    masking: MaskingConfig,
    feature_dim: int,
    objective: dict = None,
    static_dim: Optional[int] = None,
) -> bool:
    """The ``needs_intensity`` of the task :func:`build_task` would build, without building one that
    reads files (the ECAPA tasks read their cluster assignments; they never use intensities)."""
    if kind in ("ecapa_speaker", "ecapa_contrastive"):
        from ..contrastive.tasks import ContrastiveTask, SpeakerTask

        return {"ecapa_speaker": SpeakerTask, "ecapa_contrastive": ContrastiveTask}[kind].needs_intensity
    return build_task(kind, model, masking, feature_dim, objective, static_dim).needs_intensity
