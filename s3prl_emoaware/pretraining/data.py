"""Pre-training data: features computed once per utterance, intensities from the cache, bucketed batches.

Batch order is a pure function of (seed, epoch): batches are built from the length-sorted
utterances (so padding is small), then shuffled with ``Random(seed + epoch)``; under DDP,
rank r takes batches r, r + world, ... of that list. Since the micro-batch at any optimizer
step is known from the step number alone, resuming needs no sampler state.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..corpora.reader import Utterance
from ..features import FbankFrontend
from ..utils.audio import AudioError, read_audio
from ..utils.errors import UserFacingError

logger = logging.getLogger(__name__)

__all__ = ["PretrainItem", "Batch", "load_items", "epoch_batches", "collate"]


@dataclass
class PretrainItem:
    utt_id: str
    features: Tensor  # (T, D)
    intensity: Optional[np.ndarray]  # (T,) or None
    speaker: Optional[str] = None
    emotion: Optional[str] = None  # kept for analysis only; never used by the objectives


@dataclass
class Batch:
    features: Tensor  # (B, T, D), zero-padded
    lengths: Tensor  # (B,)
    intensities: Optional[List[np.ndarray]]
    intensity: Optional[Tensor]  # (B, T), zero-padded
    utt_ids: Optional[List[str]] = None
    speakers: Optional[List[str]] = None


def load_items(utterances: Sequence[Utterance], frontend: FbankFrontend, cache=None, max_frames: int = 1500,
               min_frames: int = 20) -> List[PretrainItem]:
    """Features (and intensity curves) of every usable utterance; bad audio is skipped and reported."""
    from tqdm import tqdm

    items, skipped = [], 0
    for u in tqdm(utterances, desc="features", unit="utt", leave=False):
        try:
            wav = read_audio(u.path, expected_rate=frontend.config.sample_rate,
                             min_samples=frontend.config.window_samples)
        except AudioError as err:
            logger.warning("skipped: %s", err)
            skipped += 1
            continue
        with torch.no_grad():
            feats = frontend.extract_one(torch.from_numpy(wav))
        if feats.shape[0] < min_frames:
            logger.warning("skipped %s: only %d frames (< %d)", u.path, feats.shape[0], min_frames)
            skipped += 1
            continue
        curve = None
        if cache is not None:
            curve = cache.get(u.utt_id)
            if curve.shape[0] != feats.shape[0]:
                raise UserFacingError(f"{cache.root}: intensity of {u.utt_id} has {curve.shape[0]} frames but its "
                                      f"features have {feats.shape[0]}: the cache was built for another frame grid "
                                      "or audio; rebuild it with `s3prl-emoaware intensity`")
            curve = curve[:max_frames]
        items.append(PretrainItem(u.utt_id, feats[:max_frames], curve, u.speaker, u.emotion))
    if not items:
        raise UserFacingError("no usable utterance for pre-training (all skipped; see the warnings above)")
    if skipped:
        logger.warning("%d utterances skipped, %d used", skipped, len(items))
    return items


def epoch_batches(items: Sequence[PretrainItem], batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> List[List[int]]:
    order = sorted(range(len(items)), key=lambda i: (items[i].features.shape[0], items[i].utt_id))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    random.Random(seed * 100003 + epoch).shuffle(batches)
    usable = (len(batches) // world) * world or len(batches)  # equal counts per rank
    return batches[:usable][rank::world]


def collate(items: Sequence[PretrainItem]) -> Batch:
    feats = torch.nn.utils.rnn.pad_sequence([it.features for it in items], batch_first=True)
    lengths = torch.tensor([it.features.shape[0] for it in items])
    ids, speakers = [it.utt_id for it in items], [it.speaker for it in items]
    if items[0].intensity is None:
        return Batch(feats, lengths, None, None, ids, speakers)
    curves = [it.intensity for it in items]
    padded = torch.zeros(feats.shape[:2])
    for i, c in enumerate(curves):
        padded[i, :len(c)] = torch.from_numpy(np.asarray(c, dtype=np.float32))
    return Batch(feats, lengths, curves, padded, ids, speakers)
