"""CREMA-D: ``AudioWAV/<Actor>_<Sentence>_<EMO>_<LVL>.wav`` (16 kHz in the release)."""

from __future__ import annotations

from pathlib import Path
from typing import List

from ...utils.errors import UserFacingError
from .common import Utterance, visible

__all__ = ["NAME", "LABELS", "detect", "read"]

NAME = "cremad"
# corpus label -> lowercase code (SUPERB's neu/hap/ang/sad where the emotion is one of them)
LABELS = {"NEU": "neu", "HAP": "hap", "ANG": "ang", "SAD": "sad", "DIS": "dis", "FEA": "fea"}


def detect(root: Path) -> bool:
    return (Path(root) / "AudioWAV").is_dir()


def read(root: Path) -> List[Utterance]:
    items = []
    for wav in visible(Path(root) / "AudioWAV", "*.wav"):
        parts = wav.stem.split("_")
        if len(parts) != 4:
            raise UserFacingError(f"{wav}: not a CREMA-D file name (<Actor>_<Sentence>_<EMO>_<LVL>.wav)")
        items.append(Utterance(wav.stem, wav.resolve(), parts[0], LABELS.get(parts[2], parts[2].lower())))
    return items
