"""One view of every supported corpus layout: a list of :class:`Utterance` records.

Models and training code never parse layouts themselves; they call :func:`read_corpus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

__all__ = ["Utterance", "read_corpus", "LAYOUTS"]

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


def read_corpus(root, layout: str = "auto") -> List[Utterance]:
    """All utterances under ``root`` in ``layout`` (``auto`` detects it), sorted by ``utt_id``."""
    raise NotImplementedError("implemented with the corpus generator")
