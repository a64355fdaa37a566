"""One view of every supported corpus layout: a list of :class:`Utterance` records.

Models and training code never parse layouts themselves; they call :func:`read_corpus`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ..utils.errors import UserFacingError

__all__ = ["Utterance", "read_corpus", "detect_layout", "LAYOUTS"]

LAYOUTS = ("iemocap", "librispeech", "fsc")


@dataclass(frozen=True)
class Utterance:
    """One audio file of a corpus.

    Attributes:
        utt_id: unique id within the corpus (the file stem in IEMOCAP/LibriSpeech layouts).
        path: absolute path of the audio file.
        speaker: speaker id.
        emotion: 4-class SUPERB label ``neu``/``hap``/``ang``/``sad`` (or the corpus' own), None if unlabelled.
        session: IEMOCAP session (``Session1``...) or split name, None if not applicable.
        text: transcript, None if unknown.
        emotional_segment: (start, end) seconds of the emotional part for generated utterances
            that turn emotional part-way (from the generator's sidecar), else None.
    """

    utt_id: str
    path: Path
    speaker: str
    emotion: Optional[str] = None
    session: Optional[str] = None
    text: Optional[str] = None
    emotional_segment: Optional[Tuple[float, float]] = None


def detect_layout(root: Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise UserFacingError(f"{root}: corpus folder does not exist")
    if any(root.glob("Session*/sentences/wav")):
        return "iemocap"
    if (root / "data" / "train_data.csv").is_file() and (root / "wavs").is_dir():
        return "fsc"
    if any(root.glob("*/*/*/*.trans.txt")):
        return "librispeech"
    raise UserFacingError(f"{root}: unknown corpus layout (expected IEMOCAP, LibriSpeech or Fluent Speech Commands)")


def _read_iemocap(root: Path) -> List[Utterance]:
    from .iemocap import LABEL_MAP, _speaker, read_emo_evaluations

    labels = {utt: LABEL_MAP.get(label) for _, utt, label in read_emo_evaluations(root)}
    sidecar = root / "emotional_segments.json"
    segments = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    items = []
    for wav in sorted(root.glob("Session*/sentences/wav/*/*.wav")):
        utt = wav.stem
        seg = segments.get(utt)
        items.append(Utterance(utt, wav.resolve(), _speaker(utt), labels.get(utt), wav.parts[-5],
                               None, tuple(seg) if seg else None))
    return items


def _read_librispeech(root: Path) -> List[Utterance]:
    items = []
    for trans in sorted(root.glob("*/*/*/*.trans.txt")):
        split = trans.parts[-4]
        for line in trans.read_text().splitlines():
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            audio = trans.parent / f"{utt}.flac"
            items.append(Utterance(utt, audio.resolve(), utt.split("-")[0], None, split, text))
    return items


def _read_fsc(root: Path) -> List[Utterance]:
    import csv

    items = []
    for split in ("train", "valid", "test"):
        path = root / "data" / f"{split}_data.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                audio = root / row["path"]
                items.append(Utterance(Path(row["path"]).stem, audio.resolve(), row["speakerId"], None, split,
                                       row["transcription"]))
    return items


_READERS = {"iemocap": _read_iemocap, "librispeech": _read_librispeech, "fsc": _read_fsc}


def read_corpus(root, layout: str = "auto") -> List[Utterance]:
    """All utterances under ``root`` in ``layout`` (``auto`` detects it), sorted by ``utt_id``."""
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in _READERS:
        raise UserFacingError(f"unknown corpus layout {layout!r}; known: {', '.join(_READERS)}")
    return sorted(_READERS[layout](root), key=lambda u: u.utt_id)
