"""Utterance embeddings of a corpus with an ECAPA encoder (ours or SpeechBrain's weights).

The audio streams as in pre-training (:mod:`..pretraining.data`): the corpus is indexed from
its headers, features are computed per batch in DataLoader workers, so memory does not grow
with the corpus beyond the (N, E) embeddings.
"""

from __future__ import annotations

import logging
from typing import List, Tuple

import numpy as np
import torch

from ..corpora.reader import Utterance, read_corpus
from ..utils.audio import DEFAULT_MAX_BAD_FRACTION

logger = logging.getLogger(__name__)

__all__ = ["embed_corpus"]


def embed_corpus(
    corpus, encoder_ckpt, batch_size: int = 16, num_workers: int = 1, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
) -> Tuple[List[Utterance], np.ndarray, dict]:
    """(utterances used, embeddings (N, E), skipped {utt_id: reason}); unusable files are skipped and
    listed at the end, more than ``max_bad_fraction`` of them in the index is an error."""
    from tqdm import tqdm

    from ..checkpoints import load_encoder
    from ..features import num_frames
    from ..pretraining.data import build_dataset, collate, epoch_batches

    encoder, fbank = load_encoder(encoder_ckpt, "ecapa")
    utterances = read_corpus(corpus)
    # whole utterances, at least four windows long
    dataset = build_dataset(
        utterances,
        fbank,
        max_frames=2**31 - 1,
        min_frames=num_frames(fbank.window_samples * 4, fbank.window_samples, fbank.hop_samples),
        max_bad_fraction=max_bad_fraction,
        what=f"{corpus} (embeddings)",
    )
    batches = epoch_batches(dataset.entries, batch_size, 0, 0)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=num_workers)
    row = {e.utt_id: i for i, e in enumerate(dataset.entries)}
    out = np.zeros((len(dataset), encoder.config.embedding_dim), dtype=np.float32)
    skipped = dict(dataset.skipped)
    with torch.no_grad():
        for batch in tqdm(loader, desc="embeddings", unit="batch", leave=False):
            skipped.update({it.utt_id: it.reason for it in batch.skipped})
            if batch.features is not None:
                emb, _ = encoder(batch.features, batch.lengths)
                out[[row[u] for u in batch.utt_ids]] = emb.numpy()
    if len(skipped) > len(dataset.skipped):
        logger.warning(
            "%s (embeddings): %d of %d files skipped: %s",
            corpus,
            len(skipped),
            len(utterances),
            "; ".join(r for _, r in sorted(skipped.items())[:10]),
        )
    keep = [i for i, e in enumerate(dataset.entries) if e.utt_id not in skipped]
    by_id = {u.utt_id: u for u in utterances}
    return [by_id[dataset.entries[i].utt_id] for i in keep], out[keep], skipped
