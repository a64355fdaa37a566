"""Pre-training objectives that plug into the generic trainer.

A task builds its model from the recipe and turns a :class:`~.data.Batch` into a loss. The
trainer knows nothing model-specific; a new model (NPC, ECAPA) is a new task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..config import from_dict, to_dict
from ..masking.spans import MaskingConfig, batch_masks, corrupt
from ..models.mockingjay import MockingjayConfig, MockingjayForPretraining
from ..models.npc import NPCConfig, NPCModel
from .data import Batch

__all__ = ["MockingjayTask", "NPCObjective", "NPCTask", "TASKS", "build_task"]


class MockingjayTask:
    """Masked acoustic modelling: reconstruct masked frames (L1 on the masked set).

    With ``masking.strategy`` = ``ems`` the spans are ranked by intensity; ``random`` is
    Mockingjay's rule. Optional EMS extras (``model.intensity_input``,
    ``model.intensity_head``) add the intensity to the inputs and reconstruct it (L1 on
    valid frames), summed with equal weight.
    """

    kind = "mockingjay"
    needs_intensity = property(lambda self: self.masking.strategy != "random" or self.config.intensity_input
                               or self.config.intensity_head)

    def __init__(self, model: dict, masking: MaskingConfig, feature_dim: int):
        model = dict(model)
        model.setdefault("input_dim", feature_dim)
        self.config = from_dict(MockingjayConfig, model, "model")
        if self.config.input_dim != feature_dim:
            raise ValueError(f"model.input_dim {self.config.input_dim} != front-end feature dimension {feature_dim}")
        if self.config.frame_stack != 1:
            raise ValueError("pre-training with frame_stack > 1 is not supported; use frame_stack: 1")
        self.masking = masking

    def build_model(self) -> nn.Module:
        return MockingjayForPretraining(self.config)

    def model_config(self) -> dict:
        return to_dict(self.config)

    def loss(self, model: nn.Module, batch: Batch, rng: np.random.Generator) -> Tuple[Tensor, Dict[str, float]]:
        feats, lengths = batch.features, batch.lengths
        mask, _ = batch_masks(lengths.tolist(), feats.shape[1], self.masking, rng, batch.intensities)
        mask = mask.to(feats.device)
        inputs = corrupt(feats, lengths.tolist(), mask, self.masking, rng)
        intensity = batch.intensity.to(feats.device) if batch.intensity is not None else None
        recon, predicted_intensity, _ = model(inputs, lengths.to(feats.device),
                                              intensity if self.config.intensity_input else None)
        n_masked = mask.sum()
        if n_masked == 0:  # every utterance shorter than a span: nothing to learn from this batch
            return (recon.sum() * 0.0), {"masked_frames": 0.0}
        loss = (recon - feats).abs()[mask].mean()
        logs = {"recon_l1": loss.item(), "masked_frames": float(n_masked)}
        if predicted_intensity is not None:
            valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths.to(feats.device)[:, None]
            intensity_l1 = (predicted_intensity.squeeze(-1) - intensity).abs()[valid].mean()
            loss = loss + intensity_l1
            logs["intensity_l1"] = intensity_l1.item()
        return loss, logs


@dataclass
class NPCObjective:
    """How EMS changes NPC (unknown from the paper; METHOD 1.4). ``variant``:

    - ``none``: plain NPC (the baseline): L1 on every valid frame;
    - ``input_mask``: spans chosen by ``masking`` (intensity-ranked with strategy ``ems``)
      are zeroed in the input; the loss stays on all valid frames (the masked convolution
      already hides each frame's centre; this additionally removes high-intensity context);
    - ``loss_weight``: the per-frame L1 is weighted by ``1 + intensity_weight * intensity``
      (normalised by the weights' sum), so emotional frames count more;
    - ``both``: input masking and loss weighting together (the default: best emotion accuracy
      of the four on the demo corpus, by a margin inside the fold spread; see the README).
    """

    variant: str = "both"
    intensity_weight: float = 1.0

    def __post_init__(self):
        if self.variant not in ("none", "input_mask", "loss_weight", "both"):
            raise ValueError(f"objective.variant must be none, input_mask, loss_weight or both, got {self.variant!r}")


class NPCTask:
    """NPC's L1 frame prediction, with the EMS variants of :class:`NPCObjective`."""

    kind = "npc"

    def __init__(self, model: dict, masking: MaskingConfig, feature_dim: int, objective: dict = None):
        model = dict(model)
        model.setdefault("input_dim", feature_dim)
        self.config = from_dict(NPCConfig, model, "model")
        if self.config.input_dim != feature_dim:
            raise ValueError(f"model.input_dim {self.config.input_dim} != front-end feature dimension {feature_dim}")
        self.masking = masking
        self.objective = from_dict(NPCObjective, objective or {}, "objective")

    @property
    def needs_intensity(self) -> bool:
        v = self.objective.variant
        return v in ("loss_weight", "both") or (v == "input_mask" and self.masking.strategy != "random")

    def build_model(self) -> nn.Module:
        return NPCModel(self.config)

    def model_config(self) -> dict:
        return to_dict(self.config)

    def loss(self, model: nn.Module, batch: Batch, rng: np.random.Generator) -> Tuple[Tensor, Dict[str, float]]:
        feats, lengths = batch.features, batch.lengths.to(batch.features.device)
        valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
        inputs = feats
        variant = self.objective.variant
        if variant in ("input_mask", "both"):
            mask, _ = batch_masks(batch.lengths.tolist(), feats.shape[1], self.masking, rng, batch.intensities)
            inputs = feats.masked_fill(mask.to(feats.device)[..., None], 0.0)
        pred, _, _ = model(inputs)
        per_frame = (pred - feats).abs().mean(-1)
        weights = valid.to(feats.dtype)
        if variant in ("loss_weight", "both"):
            weights = weights * (1.0 + self.objective.intensity_weight * batch.intensity.to(feats.device))
        loss = (per_frame * weights).sum() / weights.sum()
        return loss, {"l1": loss.item()}


TASKS = {"mockingjay": MockingjayTask, "npc": NPCTask}


def build_task(kind: str, model: dict, masking: MaskingConfig, feature_dim: int, objective: dict = None):
    from ..contrastive.tasks import ContrastiveTask, SpeakerTask

    if kind == "ecapa_speaker":
        return SpeakerTask(model, feature_dim, objective)
    if kind == "ecapa_contrastive":
        return ContrastiveTask(model, feature_dim, objective)
    if kind not in TASKS:
        raise ValueError(f"unknown pre-training kind {kind!r}; known: {', '.join([*TASKS, 'ecapa_speaker', 'ecapa_contrastive'])}")
    if kind == "npc":
        return NPCTask(model, masking, feature_dim, objective)
    if objective:
        raise ValueError(f"objective settings are not used by {kind!r} pre-training")
    return TASKS[kind](model, masking, feature_dim)
