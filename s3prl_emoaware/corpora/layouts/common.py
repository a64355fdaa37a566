"""What every layout module shares: the :class:`Utterance` record and file listing that skips hidden files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

__all__ = ["Utterance", "visible", "is_hidden"]


@dataclass(frozen=True)
class Utterance:
    """One audio file of a corpus.

    Attributes:
        utt_id: unique id within the corpus (the file stem in IEMOCAP/LibriSpeech layouts).
        path: absolute path of the audio file.
        speaker: speaker id.
        emotion: 4-class SUPERB label ``neu``/``hap``/``ang``/``sad`` (or the corpus' own), None if unlabelled.
        session: IEMOCAP session (``Session1``...) or split name (LibriSpeech split, ESD sub-folder,
            VoxCeleb1 ``Set``), None if not applicable.
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


def is_hidden(path: Path, root: Path) -> bool:
    """True if any part of ``path`` below ``root`` starts with a dot (macOS ``._x.wav``, ``.DS_Store``, ``.git``)."""
    return any(part.startswith(".") for part in Path(path).relative_to(root).parts)


def visible(root: Path, pattern: str) -> List[Path]:
    """``root.glob(pattern)`` sorted, without hidden files or files inside hidden folders."""
    root = Path(root)
    return sorted(p for p in root.glob(pattern) if not is_hidden(p, root))
