"""Phone vocabulary, lexicon and the pure pieces of CTC phoneme recognition (decoding, PER)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from ...utils.errors import UserFacingError

__all__ = ["PhoneVocabulary", "read_lexicon", "greedy_ctc_decode", "phone_error_rate", "BLANK"]

BLANK = "<blank>"
_VARIANT = re.compile(r"\(\d+\)$")  # CMUdict's alternate pronunciations: WORD(2)


class PhoneVocabulary:
    """Phones from a vocabulary file (one per line); index 0 is the CTC blank."""

    def __init__(self, phones: Sequence[str]):
        if len(set(phones)) != len(phones):
            raise ValueError("phone vocabulary has duplicates")
        self.symbols = [BLANK, *phones]
        self.index = {p: i for i, p in enumerate(self.symbols)}

    @classmethod
    def from_file(cls, path) -> "PhoneVocabulary":
        path = Path(path)
        if not path.is_file():
            raise UserFacingError(f"{path}: phone vocabulary not found (downstream_expert.text.vocab_file)")
        phones = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not phones:
            raise UserFacingError(f"{path}: phone vocabulary is empty (downstream_expert.text.vocab_file)")
        return cls(phones)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, phones: Iterable[str]) -> List[int]:
        return [self.index[p] for p in phones]

    def decode(self, ids: Iterable[int]) -> List[str]:
        return [self.symbols[i] for i in ids]


def _known(phone: str, vocab: PhoneVocabulary) -> Optional[str]:
    """``phone`` if in the vocabulary, else without CMUdict's stress digit (AH0 -> AH) if that is."""
    if phone in vocab.index:
        return phone
    bare = phone.rstrip("012")
    return bare if bare != phone and bare in vocab.index else None


def read_lexicon(paths: Sequence, vocab: PhoneVocabulary) -> Dict[str, List[str]]:
    """``WORD<whitespace>PH1 PH2 ...`` files (SUPERB's LibriSpeech lexicons, CMUdict); the first pronunciation wins.

    CMUdict's ``;;;`` comment lines are skipped, its variants ``WORD(2)`` are alternates of
    ``WORD`` (so ignored after the first), and its stress digits are dropped when the
    vocabulary has only the bare phones (``AH0`` -> ``AH``).
    """
    lexicon: Dict[str, List[str]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserFacingError(f"{path}: lexicon not found (downstream_expert.corpus.lexicon)")
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts or line.startswith(";;;"):
                continue
            word, phones = _VARIANT.sub("", parts[0]).upper(), [_known(p, vocab) or p for p in parts[1:]]
            if not phones:
                raise UserFacingError(f"{path}:{n}: word {word!r} has no phones")
            unknown = [p for p in phones if p not in vocab.index]
            if unknown:
                raise UserFacingError(
                    f"{path}:{n}: phone(s) {' '.join(unknown)} of {word!r} are not in the "
                    "vocabulary (downstream_expert.text.vocab_file)"
                )
            lexicon.setdefault(word, phones)
    return lexicon


def greedy_ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks. ``log_probs``: (B, T, C), ``lengths``: (B,)."""
    best = log_probs.argmax(dim=-1)
    out = []
    for seq, n in zip(best, lengths.tolist()):
        ids = torch.unique_consecutive(seq[:n]).tolist()
        out.append([i for i in ids if i != 0])
    return out


def phone_error_rate(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """Sum of edit distances over sum of reference lengths (can exceed 1, as WER)."""
    import editdistance

    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("phone error rate of empty references")
    return sum(editdistance.eval(list(h), list(r)) for h, r in zip(hypotheses, references)) / total
