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

LAYOUTS = ("iemocap", "librispeech", "fsc", "cremad", "esd", "ravdess", "voxceleb")

# corpus label -> lowercase code (SUPERB's neu/hap/ang/sad where the emotion is one of them)
CREMAD_LABELS = {"NEU": "neu", "HAP": "hap", "ANG": "ang", "SAD": "sad", "DIS": "dis", "FEA": "fea"}
ESD_LABELS = {"Neutral": "neu", "Happy": "hap", "Angry": "ang", "Sad": "sad", "Surprise": "sur"}
RAVDESS_LABELS = {"01": "neu", "02": "cal", "03": "hap", "04": "sad", "05": "ang", "06": "fea", "07": "dis", "08": "sur"}


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
    if (root / "AudioWAV").is_dir():
        return "cremad"
    if any(root.glob("Actor_*/03-01-*.wav")):
        return "ravdess"
    if any(root.glob("00[0-9][0-9]/Neutral")):
        return "esd"
    if any(root.glob("wav/id*/*/*.wav")):
        return "voxceleb"
    raise UserFacingError(f"{root}: unknown corpus layout (expected one of {', '.join(LAYOUTS)})")


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


def _read_cremad(root: Path) -> List[Utterance]:
    items = []
    for wav in sorted((root / "AudioWAV").glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) != 4:
            raise UserFacingError(f"{wav}: not a CREMA-D file name (<Actor>_<Sentence>_<EMO>_<LVL>.wav)")
        items.append(Utterance(wav.stem, wav.resolve(), parts[0], CREMAD_LABELS.get(parts[2], parts[2].lower())))
    return items


def _read_esd(root: Path) -> List[Utterance]:
    items = []
    for spk_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        for emotion, code in ESD_LABELS.items():
            for wav in sorted((spk_dir / emotion).rglob("*.wav")):
                items.append(Utterance(wav.stem, wav.resolve(), spk_dir.name, code))
    return items


def _read_ravdess(root: Path) -> List[Utterance]:
    items = []
    for wav in sorted(root.glob("Actor_*/*.wav")):
        parts = wav.stem.split("-")
        if len(parts) != 7:
            raise UserFacingError(f"{wav}: not a RAVDESS file name (MM-VV-EE-II-SS-RR-AA.wav)")
        if parts[1] != "01":  # speech only (02 = song)
            continue
        items.append(Utterance(wav.stem, wav.resolve(), f"Actor_{parts[6]}", RAVDESS_LABELS.get(parts[2])))
    return items


def _read_voxceleb(root: Path) -> List[Utterance]:
    """VoxCeleb1 (wav/<speaker>/<video>/<n>.wav); the split comes from vox1_meta.csv where present."""
    import csv

    sets = {}
    meta = root / "vox1_meta.csv"
    if meta.is_file():
        with open(meta, newline="") as f:
            sets = {row["VoxCeleb1 ID"]: row["Set"] for row in csv.DictReader(f, delimiter="\t")}
    items = []
    for wav in sorted(root.glob("wav/id*/*/*.wav")):
        spk, video = wav.parts[-3], wav.parts[-2]
        items.append(Utterance(f"{spk}-{video}-{wav.stem}", wav.resolve(), spk, None, sets.get(spk)))
    return items


_READERS = {"iemocap": _read_iemocap, "librispeech": _read_librispeech, "fsc": _read_fsc,
            "cremad": _read_cremad, "esd": _read_esd, "ravdess": _read_ravdess,
            "voxceleb": _read_voxceleb}


def read_corpus(root, layout: str = "auto") -> List[Utterance]:
    """All utterances under ``root`` in ``layout`` (``auto`` detects it), sorted by ``utt_id``."""
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in _READERS:
        raise UserFacingError(f"unknown corpus layout {layout!r}; known: {', '.join(_READERS)}")
    return sorted(_READERS[layout](root), key=lambda u: u.utt_id)
