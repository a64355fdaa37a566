"""CREMA-D: ``AudioWAV/<Actor>_<Sentence>_<EMO>_<LVL>.wav`` (16 kHz in the release)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ...utils.errors import UserFacingError
from ..synth import SizePreset, emotional_speakers, emotional_utterance, write_wav
from .common import Utterance, visible

__all__ = ["NAME", "write", "LABELS", "detect", "read"]

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


_CREMAD_EMO = {"neu": "NEU", "hap": "HAP", "ang": "ANG", "sad": "SAD"}
_CREMAD_SENTENCES = {
    "IEO": "it is eleven o'clock",
    "TIE": "that is exactly what happened",
    "IOM": "i'm on my way to the meeting",
    "DFA": "don't forget a jacket",
}


def write(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    """CREMA-D: AudioWAV/<ActorID>_<Sentence>_<EMO>_<LVL>.wav (LVL: LO/MD/HI/XX)."""
    n_actors = 6 if size.iemocap_utts_per_speaker <= 5 else 12
    for a, (voice, offset) in enumerate(emotional_speakers(n_actors, rng)):
        actor = 1001 + a
        for code, text in _CREMAD_SENTENCES.items():
            for emo, tag in _CREMAD_EMO.items():
                level, intensity = [("LO", 0.5), ("MD", 0.75), ("HI", 1.0), ("XX", 0.8)][int(rng.integers(4))]
                audio, _ = emotional_utterance(text, voice, emo, intensity, offset, mixed=False)
                write_wav(out / "AudioWAV" / f"{actor}_{code}_{tag}_{level if emo != 'neu' else 'XX'}.wav", audio)
