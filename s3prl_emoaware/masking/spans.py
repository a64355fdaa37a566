"""Span masking for masked acoustic modelling: Mockingjay's random rule and EMS.

All functions are pure and take a ``numpy.random.Generator``, so a seed fixes every mask.

Per utterance of valid length L, span length C and ratio r (METHOD section 1.3):

- the number of spans is ``p = round(r * L / C)``; valid starts are ``0 .. L-C-1``;
- **random** (Mockingjay): p distinct valid starts drawn uniformly;
- **ems** (emotional masking strategy): the 2p frames of highest intensity, in descending
  order, are candidates; the first p that are valid starts are used; if fewer than p
  qualify, the utterance falls back to the random rule (as the authors' code);
- **threshold** (a variant the authors' code had, disabled): valid starts whose intensity
  exceeds ``threshold``, in random order, the first p; random rule if none qualifies;
- spans may overlap (``mask_allow_overlap: True`` in Mockingjay's config), so the masked
  set is the union of ``[a, a + C)`` over the starts;
- corruption is decided once per utterance (Mockingjay): with probability 0.8 the masked
  frames are zeroed, 0.1 replaced by the frames of random spans of the same utterance,
  0.1 left unchanged; the loss is computed on the masked set in every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["MaskingConfig", "num_spans", "random_starts", "ems_starts", "threshold_starts", "spans_to_mask",
           "choose_starts", "batch_masks", "corrupt"]

STRATEGIES = ("random", "ems", "threshold")


@dataclass
class MaskingConfig:
    """Args:
        strategy: ``random`` (Mockingjay), ``ems`` (intensity-ranked) or ``threshold``.
        mask_ratio: share of valid frames to mask (Mockingjay: 0.15; EMS ablated 0.15-0.40).
        span: consecutive frames per span (C = 7).
        threshold: intensity threshold of the ``threshold`` strategy.
        zero_prob: probability that an utterance's masked frames are zeroed.
        replace_prob: probability that they are replaced by random frames (else left unchanged).
    """

    strategy: str = "ems"
    mask_ratio: float = 0.15
    span: int = 7
    threshold: float = 0.5
    zero_prob: float = 0.8
    replace_prob: float = 0.1

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"masking strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.span < 1:
            raise ValueError(f"span must be >= 1, got {self.span}")
        if self.zero_prob < 0 or self.replace_prob < 0 or self.zero_prob + self.replace_prob > 1:
            raise ValueError("zero_prob and replace_prob must be >= 0 and sum to at most 1")


def num_spans(length: int, cfg: MaskingConfig) -> int:
    return int(round(length * cfg.mask_ratio / cfg.span))


def _n_valid_starts(length: int, span: int) -> int:
    return max(0, length - span)  # starts 0 .. L-C-1


def random_starts(length: int, cfg: MaskingConfig, rng: np.random.Generator) -> np.ndarray:
    n_valid, p = _n_valid_starts(length, cfg.span), num_spans(length, cfg)
    if n_valid == 0 or p == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.choice(n_valid, size=min(p, n_valid), replace=False)).astype(np.int64)


def ems_starts(intensity: Sequence[float], length: int, cfg: MaskingConfig, rng: np.random.Generator) -> np.ndarray:
    intensity = np.asarray(intensity, dtype=np.float64)[:length]
    n_valid, p = _n_valid_starts(length, cfg.span), num_spans(length, cfg)
    if n_valid == 0 or p == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argsort(-intensity, kind="stable")[:2 * p]
    starts = [int(c) for c in candidates if c < n_valid][:p]
    if len(starts) < p:
        return random_starts(length, cfg, rng)
    return np.sort(np.array(starts, dtype=np.int64))


def threshold_starts(intensity: Sequence[float], length: int, cfg: MaskingConfig,
                     rng: np.random.Generator) -> np.ndarray:
    intensity = np.asarray(intensity, dtype=np.float64)[:length]
    n_valid, p = _n_valid_starts(length, cfg.span), num_spans(length, cfg)
    if n_valid == 0 or p == 0:
        return np.zeros(0, dtype=np.int64)
    above = np.where(intensity[:n_valid] > cfg.threshold)[0]
    if above.size == 0:
        return random_starts(length, cfg, rng)
    return np.sort(rng.permutation(above)[:p]).astype(np.int64)


def choose_starts(cfg: MaskingConfig, length: int, rng: np.random.Generator,
                  intensity: Optional[Sequence[float]] = None) -> np.ndarray:
    if cfg.strategy == "random":
        return random_starts(length, cfg, rng)
    if intensity is None:
        raise ValueError(f"masking strategy {cfg.strategy!r} needs an intensity curve")
    if len(intensity) < length:
        raise ValueError(f"intensity curve has {len(intensity)} frames for an utterance of {length}")
    fn = ems_starts if cfg.strategy == "ems" else threshold_starts
    return fn(intensity, length, cfg, rng)


def spans_to_mask(starts: Sequence[int], length: int, span: int) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    for a in starts:
        mask[a:a + span] = True
    return mask


def batch_masks(lengths: Sequence[int], max_len: int, cfg: MaskingConfig, rng: np.random.Generator,
                intensities: Optional[Sequence[Sequence[float]]] = None) -> Tuple[Tensor, List[np.ndarray]]:
    """(B, max_len) boolean mask of the frames to predict, and each utterance's span starts."""
    mask = np.zeros((len(lengths), max_len), dtype=bool)
    all_starts = []
    for i, length in enumerate(lengths):
        starts = choose_starts(cfg, int(length), rng, None if intensities is None else intensities[i])
        mask[i, :length] = spans_to_mask(starts, int(length), cfg.span)
        all_starts.append(starts)
    return torch.from_numpy(mask), all_starts


def corrupt(features: Tensor, lengths: Sequence[int], mask: Tensor, cfg: MaskingConfig,
            rng: np.random.Generator) -> Tensor:
    """Mockingjay's utterance-wise corruption of ``features`` (B, T, D) at ``mask`` (B, T)."""
    out = features.clone()
    for i, length in enumerate(lengths):
        idx = torch.nonzero(mask[i], as_tuple=False).flatten()
        if idx.numel() == 0:
            continue
        dice = rng.random()
        if dice < cfg.zero_prob:
            out[i, idx] = 0
        elif dice < cfg.zero_prob + cfg.replace_prob:
            # frames of random spans of the same utterance (as many spans as were masked)
            n_valid = max(1, int(length) - cfg.span)
            sources = []
            while sum(len(s) for s in sources) < idx.numel():
                a = int(rng.integers(n_valid))
                sources.append(torch.arange(a, min(a + cfg.span, int(length))))
            src = torch.cat(sources)[:idx.numel()]
            out[i, idx] = features[i, src]
    return out
