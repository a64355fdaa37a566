"""RAVDESS speech: ``Actor_XX/03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav``.

The release is 48 kHz; :func:`~s3prl_emoaware.utils.audio.read_audio` resamples it to 16 kHz.
Song files (vocal channel 02) are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from ...utils.errors import UserFacingError
from .common import Utterance, visible

__all__ = ["NAME", "LABELS", "detect", "read"]

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
