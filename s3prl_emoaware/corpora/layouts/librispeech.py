"""LibriSpeech: a root with split folders (``<root>/<split>/<spk>/<chapter>/*.trans.txt``) or one split folder.

A split folder (``/data/LibriSpeech/train-clean-360``) is read whole. A root with several
splits is read by an explicit choice, ``splits=[...]`` (or ``"all"``); without one, only the
``train-*`` splits are read and the others are named in the log, so pre-training never sees
dev or test utterances by accident. A root with no ``train-*`` split needs ``splits``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ...utils.errors import UserFacingError
from ..espeak import phonemize, synthesize
from ..synth import EMOTIONS, FEMALE, MALE, SENTENCES, SizePreset, speaker_prosody, write_wav
from .common import Utterance, is_hidden, visible

logger = logging.getLogger(__name__)

__all__ = ["NAME", "write", "detect", "read", "split_folders"]

NAME = "librispeech"


def _is_split(folder: Path) -> bool:
    return any(p for p in folder.glob("*/*/*.trans.txt") if not is_hidden(p, folder))


def split_folders(root: Path) -> List[str]:
    """Names of the split folders under a LibriSpeech root (empty if ``root`` is itself a split)."""
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_split(p))


def detect(root: Path) -> bool:
    root = Path(root)
    return _is_split(root) or bool(split_folders(root))


def _read_split(folder: Path) -> List[Utterance]:
    items = []
    for trans in visible(folder, "*/*/*.trans.txt"):
        for line in trans.read_text().splitlines():
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            audio = trans.parent / f"{utt}.flac"
            items.append(Utterance(utt, audio.resolve(), utt.split("-")[0], None, folder.name, text))
    return items


def read(root: Path, splits: Optional[Union[str, Sequence[str]]] = None) -> List[Utterance]:
    """Utterances of a split folder, or of the chosen ``splits`` of a root (default: its ``train-*`` splits)."""
    root = Path(root)
    available = split_folders(root)
    if not available:  # root is one split folder
        if splits not in (None, "all") and list(splits) != [root.name]:
            raise UserFacingError(f"{root}: a single LibriSpeech split folder; splits={splits!r} cannot be chosen")
        return _read_split(root)
    if splits == "all":
        chosen = available
    elif splits is None:
        chosen = [s for s in available if s.startswith("train")]
        if not chosen:
            raise UserFacingError(
                f"{root}: no train-* split among {', '.join(available)}; choose splits explicitly "
                "(or point at one split folder)"
            )
        skipped = [s for s in available if s not in chosen]
        logger.info(
            "%s: reading the training splits %s%s",
            root,
            ", ".join(chosen),
            f" (not {', '.join(skipped)}; pass splits to choose)" if skipped else "",
        )
    else:
        chosen = [splits] if isinstance(splits, str) else list(splits)
        missing = [s for s in chosen if s not in available]
        if missing:
            raise UserFacingError(f"{root}: no LibriSpeech split {', '.join(missing)} (found {', '.join(available)})")
    return [u for split in chosen for u in _read_split(root / split)]


def write(
    out: Path,
    rng: np.random.Generator,
    size: SizePreset,
    splits: Tuple[str, ...] = ("train-clean-100", "dev-clean", "test-clean"),
) -> None:
    """``splits``: split folders to write; train-*/dev-*/test-* ones get the preset's speaker counts."""
    voices = MALE + FEMALE
    speaker_index = 0
    words = set()
    counts = {"train": size.libri_speakers[0], "dev": size.libri_speakers[1], "test": size.libri_speakers[2]}
    for split in splits:
        n_speakers = counts.get(split.split("-")[0], size.libri_speakers[0])
        for _ in range(n_speakers):
            spk = 100 + 37 * speaker_index
            chapter = 1000 + 11 * speaker_index
            voice = voices[speaker_index % len(voices)]
            offset = float(rng.uniform(-10, 10))
            speaker_index += 1
            folder = out / split / str(spk) / str(chapter)
            lines = []
            for u in range(size.libri_utts_per_speaker):
                text = SENTENCES[int(rng.integers(len(SENTENCES)))]
                emotion = ("neu", "hap", "sad")[int(rng.integers(3))]  # read speech, some expressiveness
                prosody = speaker_prosody(EMOTIONS["neu"].blend(EMOTIONS[emotion], 0.3), offset)
                utt = f"{spk}-{chapter}-{u:04d}"
                write_wav(folder / f"{utt}.flac", synthesize(text, voice, prosody), fmt="FLAC")
                lines.append(f"{utt} {text.upper()}\n")
                words.update(text.upper().split())
            (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    lexicon = phonemize(sorted(words))
    (out / "lexicon.txt").write_text("".join(f"{w}\t{' '.join(p)}\n" for w, p in sorted(lexicon.items())))
    phones = sorted({p for ps in lexicon.values() for p in ps})
    (out / "phones.txt").write_text("".join(f"{p}\n" for p in phones))
