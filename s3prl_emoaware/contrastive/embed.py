"""Utterance embeddings of a corpus with an ECAPA encoder (ours or SpeechBrain's weights)."""

from __future__ import annotations

import logging
from typing import List, Tuple

import numpy as np
import torch

from ..corpora.reader import Utterance, read_corpus
from ..utils.audio import AudioError, read_audio

logger = logging.getLogger(__name__)

__all__ = ["embed_corpus"]


def embed_corpus(corpus, encoder_ckpt, batch_size: int = 16) -> Tuple[List[Utterance], np.ndarray, dict]:
    """(utterances used, embeddings (N, E), skipped {utt_id: reason})."""
    from tqdm import tqdm

    from ..features import FbankFrontend
    from ..s3prl_adapters.upstreams.ecapa import load_ecapa

    encoder, fbank = load_ecapa(encoder_ckpt)
    frontend = FbankFrontend(fbank)
    used, feats, skipped = [], [], {}
    for u in tqdm(read_corpus(corpus), desc="embeddings", unit="utt", leave=False):
        try:
            wav = read_audio(u.path, min_samples=fbank.window_samples * 4)
        except AudioError as err:
            skipped[u.utt_id] = str(err)
            continue
        used.append(u)
        feats.append(frontend.extract_one(torch.from_numpy(wav)))
    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
    out = np.zeros((len(feats), encoder.config.embedding_dim), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            padded = torch.nn.utils.rnn.pad_sequence([feats[i] for i in idx], batch_first=True)
            lengths = torch.tensor([feats[i].shape[0] for i in idx])
            emb, _ = encoder(padded, lengths)
            out[idx] = emb.numpy()
    return used, out, skipped
