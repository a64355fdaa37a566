"""ESD: ``<spk>/<Emotion>/*.wav`` (flat) or ``<spk>/<Emotion>/{train,evaluation,test}/*.wav`` (the release).

Speakers 0001-0010 speak Mandarin and 0011-0020 English; ``speakers`` chooses: ``"english"``
(default), ``"mandarin"``, ``"all"`` or a list of speaker ids. In the split layout the
sub-folder name goes to :attr:`Utterance.session`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Sequence, Union

from ...utils.errors import UserFacingError
from .common import Utterance, visible

logger = logging.getLogger(__name__)

__all__ = ["NAME", "LABELS", "ENGLISH", "MANDARIN", "detect", "read", "speaker_ids"]

NAME = "esd"
LABELS = {"Neutral": "neu", "Happy": "hap", "Angry": "ang", "Sad": "sad", "Surprise": "sur"}
MANDARIN = tuple(f"{i:04d}" for i in range(1, 11))
ENGLISH = tuple(f"{i:04d}" for i in range(11, 21))


def detect(root: Path) -> bool:
    return any(Path(root).glob("00[0-9][0-9]/Neutral"))


def speaker_ids(speakers: Union[str, Sequence[str]], present: Sequence[str]) -> List[str]:
    """The speaker folders to read among ``present`` for a ``speakers`` choice."""
    if speakers == "all":
        return list(present)
    if speakers in ("english", "mandarin"):
        wanted = ENGLISH if speakers == "english" else MANDARIN
    elif isinstance(speakers, str):
        raise ValueError(f"ESD speakers must be 'english', 'mandarin', 'all' or a list of ids, got {speakers!r}")
    else:
        wanted = tuple(str(s).zfill(4) for s in speakers)
    return [s for s in present if s in wanted]


def read(root: Path, speakers: Union[str, Sequence[str]] = "english") -> List[Utterance]:
    root = Path(root)
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    chosen = speaker_ids(speakers, present)
    if not chosen:
        raise UserFacingError(f"{root}: no ESD speaker folder for speakers={speakers!r} (found {', '.join(present)})")
    if len(chosen) < len(present):
        logger.info("%s: reading ESD speakers %s (speakers=%r; %d other speaker folders not read)",
                    root, ", ".join(chosen), speakers, len(present) - len(chosen))
    items = []
    for spk in chosen:
        for emotion, code in LABELS.items():
            folder = root / spk / emotion
            for wav in visible(folder, "*.wav") + visible(folder, "*/*.wav"):
                split = wav.parent.name if wav.parent != folder else None
                items.append(Utterance(wav.stem, wav.resolve(), spk, code, split))
    return items
