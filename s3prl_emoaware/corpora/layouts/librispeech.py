"""LibriSpeech: a root with split folders (``<root>/<split>/<spk>/<chapter>/*.trans.txt``) or one split folder.

A split folder (``/data/LibriSpeech/train-clean-360``) is read whole. A root with several
splits is read by an explicit choice, ``splits=[...]`` (or ``"all"``); without one, only the
``train-*`` splits are read and the others are named in the log, so pre-training never sees
dev or test utterances by accident. A root with no ``train-*`` split needs ``splits``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ...utils.errors import UserFacingError
from .common import Utterance, is_hidden, visible

logger = logging.getLogger(__name__)

__all__ = ["NAME", "detect", "read", "split_folders"]

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
            raise UserFacingError(f"{root}: no train-* split among {', '.join(available)}; choose splits explicitly "
                                  "(or point at one split folder)")
        skipped = [s for s in available if s not in chosen]
        logger.info("%s: reading the training splits %s%s", root, ", ".join(chosen),
                    f" (not {', '.join(skipped)}; pass splits to choose)" if skipped else "")
    else:
        chosen = [splits] if isinstance(splits, str) else list(splits)
        missing = [s for s in chosen if s not in available]
        if missing:
            raise UserFacingError(f"{root}: no LibriSpeech split {', '.join(missing)} (found {', '.join(available)})")
    return [u for split in chosen for u in _read_split(root / split)]
