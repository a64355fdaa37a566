"""ESD: ``<spk>/<Emotion>/*.wav`` (flat) or ``<spk>/<Emotion>/{train,evaluation,test}/*.wav`` (the release).

Speakers 0001-0010 speak Mandarin and 0011-0020 English; ``speakers`` chooses: ``"english"``,
``"mandarin"``, ``"all"``, a list of speaker ids, or ``"auto"`` (default): ``"english"`` when every
speaker folder is one of the release's 0001-0020, else ``"all"`` (a folder with other ids is not
the release, e.g. a generated corpus with ``speakers=40``). In the split layout the
sub-folder name goes to :attr:`Utterance.session`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from ...utils.errors import UserFacingError
from ..synth import SENTENCES, SizePreset, emotional_speakers, emotional_utterance, write_wav
from .common import Utterance, visible

logger = logging.getLogger(__name__)

__all__ = ["NAME", "write", "LABELS", "ENGLISH", "MANDARIN", "detect", "read", "speaker_ids", "default_per_emotion"]

NAME = "esd"
LABELS = {"Neutral": "neu", "Happy": "hap", "Angry": "ang", "Sad": "sad", "Surprise": "sur"}
MANDARIN = tuple(f"{i:04d}" for i in range(1, 11))
ENGLISH = tuple(f"{i:04d}" for i in range(11, 21))


def detect(root: Path) -> bool:
    return any(Path(root).glob("00[0-9][0-9]/Neutral"))


def speaker_ids(speakers: Union[str, Sequence[str]], present: Sequence[str]) -> List[str]:
    """The speaker folders to read among ``present`` for a ``speakers`` choice."""
    if speakers == "auto":
        speakers = "english" if set(present) <= set(MANDARIN + ENGLISH) else "all"
    if speakers == "all":
        return list(present)
    if speakers in ("english", "mandarin"):
        wanted = ENGLISH if speakers == "english" else MANDARIN
    elif isinstance(speakers, str):
        raise ValueError(
            f"ESD speakers must be 'auto', 'english', 'mandarin', 'all' or a list of ids, got {speakers!r}"
        )
    else:
        wanted = tuple(str(s).zfill(4) for s in speakers)
    return [s for s in present if s in wanted]


def read(root: Path, speakers: Union[str, Sequence[str]] = "auto") -> List[Utterance]:
    root = Path(root)
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    chosen = speaker_ids(speakers, present)
    if not chosen:
        raise UserFacingError(f"{root}: no ESD speaker folder for speakers={speakers!r} (found {', '.join(present)})")
    if len(chosen) < len(present):
        logger.info(
            "%s: reading ESD speakers %s (speakers=%r; %d other speaker folders not read)",
            root,
            ", ".join(chosen),
            speakers,
            len(present) - len(chosen),
        )
    items = []
    for spk in chosen:
        for emotion, code in LABELS.items():
            folder = root / spk / emotion
            for wav in visible(folder, "*.wav") + visible(folder, "*/*.wav"):
                split = wav.parent.name if wav.parent != folder else None
                items.append(Utterance(wav.stem, wav.resolve(), spk, code, split))
    return items


_ESD_EMO = {"neu": "Neutral", "hap": "Happy", "ang": "Angry", "sad": "Sad"}


def default_per_emotion(size: SizePreset) -> int:
    """Utterances per speaker and emotion the writer makes at ``size`` unless told (3 tiny, 8 demo)."""
    return 3 if size.iemocap_utts_per_speaker <= 5 else 8


def write(
    out: Path,
    rng: np.random.Generator,
    size: SizePreset,
    speakers: Optional[int] = None,
    split: bool = False,
    utterances_per_emotion: Optional[int] = None,
) -> None:
    """ESD: <spk>/<Emotion>/<spk>_<nnnnnn>.wav and <spk>/<spk>.txt.

    By default English speakers from 0011 (4 tiny, 10 demo); up to 10 ``speakers`` are English
    ids from 0011 too (the ``auto`` reader takes the folder for the release and reads its English
    ids); more, e.g. ``speakers=20``, are written from 0001 as the release (0001-0010 are its
    Mandarin speakers). ``split``: the release's
    <spk>/<Emotion>/{train,evaluation,test}/ sub-folders (utterances dealt round-robin).
    ``utterances_per_emotion``: per speaker and emotion (default :func:`default_per_emotion`; the
    release has 350); the speakers (voices, pitch offsets) do not depend on it, since they are
    drawn first.
    """
    n_spk = speakers or (4 if size.iemocap_utts_per_speaker <= 5 else 10)
    first = 1 if speakers and speakers > len(ENGLISH) else 11
    per_emotion = default_per_emotion(size) if utterances_per_emotion is None else utterances_per_emotion
    if per_emotion < 1:
        raise UserFacingError(f"ESD: utterances_per_emotion must be >= 1, got {per_emotion}")
    for s, (voice, offset) in enumerate(emotional_speakers(n_spk, rng)):
        spk = f"{first + s:04d}"
        lines, n = [], 0
        for emo, folder in _ESD_EMO.items():
            for k in range(per_emotion):
                n += 1
                text = SENTENCES[int(rng.integers(len(SENTENCES)))]
                audio, _ = emotional_utterance(text, voice, emo, float(rng.uniform(0.7, 1.0)), offset, mixed=False)
                name = f"{spk}_{n:06d}"
                sub = ("train", "evaluation", "test")[k % 3] if split else ""
                write_wav(out / spk / folder / sub / f"{name}.wav", audio)
                lines.append(f"{name}\t{text.capitalize()}.\t{folder}\n")
        (out / spk / f"{spk}.txt").write_text("".join(lines))
