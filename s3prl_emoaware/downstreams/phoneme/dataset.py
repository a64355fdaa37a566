"""LibriSpeech-layout utterances with phone targets, and length-bucketed batches."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
from torch.utils.data import Dataset, Sampler

from ...corpora.layouts.common import visible
from ...utils.audio import DEFAULT_AUDIO_MEMORY_GB, DEFAULT_MAX_BAD_FRACTION, AudioMemo, screen_audio
from ...utils.errors import UserFacingError
from .text import PhoneVocabulary

logger = logging.getLogger(__name__)

__all__ = ["PhoneDataset", "BucketSampler", "collate"]

_MIN_SAMPLES = 400  # one 25 ms analysis window at 16 kHz


class PhoneDataset(Dataset):
    """Items ``(wav float32 (samples,), phone ids LongTensor, utt_id)`` of the given LibriSpeech splits.

    Utterances with a word missing from the lexicon are dropped and counted (:attr:`dropped`,
    logged with the commonest missing words); more than half dropped is an error. Audio at
    another rate is resampled to 16 kHz; files whose header is unusable or shorter than one
    analysis window are skipped and listed (more than ``max_bad_fraction`` of them: an error).
    """

    def __init__(
        self,
        root,
        splits: Sequence[str],
        lexicon: Dict[str, List[str]],
        vocab: PhoneVocabulary,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
        audio_memory_gb: float = DEFAULT_AUDIO_MEMORY_GB,
    ):
        root = Path(root)
        self._read = AudioMemo(audio_memory_gb, expected_rate=16000, min_samples=_MIN_SAMPLES)
        if not root.is_dir():
            raise UserFacingError(f"{root}: LibriSpeech root does not exist (downstream_expert.corpus.path)")
        self.items: List[Tuple[Path, List[int], str, int]] = []
        dropped: Counter = Counter()  # missing word -> utterances dropped for it
        n_dropped = 0
        for split in splits:
            trans_files = visible(root / split, "*/*/*.trans.txt")
            if not trans_files:
                raise UserFacingError(f"{root / split}: no <spk>/<chapter>/*.trans.txt files for split {split!r}")
            for trans in trans_files:
                for line in trans.read_text().splitlines():
                    if not line.strip():
                        continue
                    utt, _, text = line.partition(" ")
                    missing = [w for w in text.split() if w not in lexicon]
                    if missing:  # dropped and counted: a 200k-word lexicon still misses a few names
                        dropped.update(set(missing))
                        n_dropped += 1
                        continue
                    phones = [p for word in text.split() for p in lexicon[word]]
                    audio = trans.parent / f"{utt}.flac"
                    self.items.append((audio, vocab.encode(phones), utt, len(text)))
        # unusable or too-short files are skipped and listed (max_bad_fraction of them at most), from headers
        self.items, _ = screen_audio(
            self.items,
            lambda item: item[0],
            f"{root} (phoneme recognition)",
            16000,
            _MIN_SAMPLES,
            max_bad_fraction,
            name_of=lambda item: item[2],
        )
        self.dropped = n_dropped
        if n_dropped:
            words = ", ".join(w for w, _ in dropped.most_common(5))
            if n_dropped * 2 > n_dropped + len(self.items):
                raise UserFacingError(
                    f"{root}: {n_dropped} of {n_dropped + len(self.items)} utterances of "
                    f"{', '.join(splits)} have words not in the lexicon (e.g. {words}): wrong "
                    "lexicon for this corpus? (downstream_expert.corpus.lexicon)"
                )
            logger.warning(
                "%s: %d of %d utterances of %s dropped, words not in the lexicon (%d words, e.g. %s)",
                root,
                n_dropped,
                n_dropped + len(self.items),
                ", ".join(splits),
                len(dropped),
                words,
            )
        # longest transcripts first (as s3prl's libriphone): the first batch shows memory problems at once
        self.items.sort(key=lambda item: -item[3])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        audio, ids, utt, _ = self.items[i]
        return (
            self._read(audio),
            torch.tensor(ids, dtype=torch.long),
            utt,
        )


class BucketSampler(Sampler):
    """Batches of neighbours in the length order, batch order shuffled per epoch (seeded)."""

    def __init__(self, n_items: int, batch_size: int, shuffle: bool, epoch: int = 0, seed: int = 0):
        self.batches = [list(range(i, min(i + batch_size, n_items))) for i in range(0, n_items, batch_size)]
        if shuffle:
            random.Random(seed + epoch).shuffle(self.batches)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def collate(items):
    wavs, labels, utts = zip(*items)
    return list(wavs), list(labels), list(utts)
