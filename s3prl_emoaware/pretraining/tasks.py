"""Pre-training objectives that plug into the generic trainer.

A task builds its model from the recipe and turns a :class:`~.data.Batch` into a loss. The
trainer knows nothing model-specific; a new model (NPC, ECAPA) is a new task.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..config import from_dict, to_dict
from ..masking.spans import MaskingConfig, batch_masks, corrupt
from ..models.mockingjay import MockingjayConfig, MockingjayForPretraining
from .data import Batch

__all__ = ["MockingjayTask", "TASKS", "build_task"]


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


TASKS = {"mockingjay": MockingjayTask}


def build_task(kind: str, model: dict, masking: MaskingConfig, feature_dim: int):
    if kind not in TASKS:
        raise ValueError(f"unknown pre-training kind {kind!r}; known: {', '.join(TASKS)}")
    return TASKS[kind](model, masking, feature_dim)
