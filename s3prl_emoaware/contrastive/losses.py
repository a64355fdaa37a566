"""Losses of the contrastive method (pure functions over embeddings and labels).

``allowed[i, j]`` says which pairs an anchor may be compared with: with negatives drawn
from the same speaker only (the method's default), pairs across speakers are excluded, so
the encoder cannot win by separating speakers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["pair_masks", "supervised_contrastive", "triplet", "aam_softmax_logits", "GradientReversal"]


def pair_masks(speakers: Tensor, clusters: Tensor, negatives: str = "same_speaker"):
    """(positive, allowed) boolean (B, B): positive = same speaker and cluster (not itself)."""
    same_spk = speakers[:, None] == speakers[None, :]
    same_cluster = clusters[:, None] == clusters[None, :]
    eye = torch.eye(len(speakers), dtype=torch.bool, device=speakers.device)
    positive = same_spk & same_cluster & ~eye
    if negatives == "same_speaker":
        allowed = same_spk & ~eye
    elif negatives == "all":
        allowed = ~eye
    else:
        raise ValueError(f"negatives must be same_speaker or all, got {negatives!r}")
    return positive, allowed


def supervised_contrastive(embeddings: Tensor, positive: Tensor, allowed: Tensor, temperature: float) -> Tensor:
    """InfoNCE / supervised-contrastive: mean over anchors with a positive of
    -mean_p log softmax over the allowed pairs."""
    z = F.normalize(embeddings, dim=-1)
    logits = (z @ z.t() / temperature).masked_fill(~allowed, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has_pos = positive.any(1)
    if not has_pos.any():
        return embeddings.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1))
    return per_anchor[has_pos].mean()


def triplet(embeddings: Tensor, positive: Tensor, allowed: Tensor, margin: float) -> Tensor:
    """Hardest-positive / hardest-negative triplet loss on cosine distances."""
    z = F.normalize(embeddings, dim=-1)
    dist = 1 - z @ z.t()
    negative = allowed & ~positive
    valid = positive.any(1) & negative.any(1)
    if not valid.any():
        return embeddings.sum() * 0.0
    hardest_pos = dist.masked_fill(~positive, float("-inf")).max(1).values
    hardest_neg = dist.masked_fill(~negative, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def aam_softmax_logits(embeddings: Tensor, weight: Tensor, labels: Tensor, margin: float, scale: float) -> Tensor:
    """Additive angular margin (ArcFace) logits: cos(theta + m) for the true class, scaled."""
    cosine = F.normalize(embeddings, dim=-1) @ F.normalize(weight, dim=-1).t()
    theta = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
    target = torch.cos(theta + margin)
    onehot = F.one_hot(labels, weight.shape[0]).bool()
    return scale * torch.where(onehot, target, cosine)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


class GradientReversal(nn.Module):
    """Identity forward, gradient multiplied by -alpha backward (adversarial speaker head)."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)
