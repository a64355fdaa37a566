"""RAVDESS speech: ``Actor_XX/03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav``.

The release is 48 kHz; :func:`~s3prl_emoaware.utils.audio.read_audio` resamples it to 16 kHz.
Song files (vocal channel 02) are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ...utils.errors import UserFacingError
from ..synth import SizePreset, emotional_speakers, emotional_utterance, write_wav
from .common import Utterance, visible

__all__ = ["NAME", "write", "LABELS", "detect", "read"]

NAME = "ravdess"
LABELS = {"01": "neu", "02": "cal", "03": "hap", "04": "sad", "05": "ang", "06": "fea", "07": "dis", "08": "sur"}


def detect(root: Path) -> bool:
    return any(Path(root).glob("Actor_*/03-01-*.wav"))


def read(root: Path) -> List[Utterance]:
    items = []
    for wav in visible(Path(root), "Actor_*/*.wav"):
        parts = wav.stem.split("-")
        if len(parts) != 7:
            raise UserFacingError(f"{wav}: not a RAVDESS file name (MM-VV-EE-II-SS-RR-AA.wav)")
        if parts[1] != "01":  # speech only (02 = song)
            continue
        items.append(Utterance(wav.stem, wav.resolve(), f"Actor_{parts[6]}", LABELS.get(parts[2])))
    return items


_RAVDESS_EMO = {"neu": "01", "hap": "03", "sad": "04", "ang": "05"}
_RAVDESS_STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}


def write(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    """RAVDESS speech: Actor_XX/03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav."""
    n_actors = 6 if size.iemocap_utts_per_speaker <= 5 else 12
    for a, (voice, offset) in enumerate(emotional_speakers(n_actors, rng)):
        actor = f"{a + 1:02d}"
        for emo, code in _RAVDESS_EMO.items():
            for level, intensity in (("01", 0.6), ("02", 1.0)):
                if emo == "neu" and level == "02":
                    continue  # RAVDESS has no strong-intensity neutral
                for stmt, text in _RAVDESS_STATEMENTS.items():
                    audio, _ = emotional_utterance(text, voice, emo, intensity, offset, mixed=False)
                    write_wav(out / f"Actor_{actor}" / f"03-01-{code}-{level}-{stmt}-01-{actor}.wav", audio)
