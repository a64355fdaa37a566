"""One view of every supported corpus layout: a list of :class:`Utterance` records.

Models and training code never parse layouts themselves; they call :func:`read_corpus`. Each
layout's knowledge (detection, reading, labels, options) lives in its module under
:mod:`.layouts`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import List

from ..utils.errors import UserFacingError
from .layouts import REGISTRY
from .layouts.common import Utterance

__all__ = ["Utterance", "read_corpus", "detect_layout", "LAYOUTS"]

LAYOUTS = ("iemocap", "librispeech", "fsc", "cremad", "esd", "ravdess", "voxceleb")


def detect_layout(root: Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise UserFacingError(f"{root}: corpus folder does not exist")
    for name, module in REGISTRY.items():
        if module.detect(root):
            return name
    raise UserFacingError(f"{root}: unknown corpus layout (expected one of {', '.join(LAYOUTS)})")


def read_corpus(root, layout: str = "auto", **options) -> List[Utterance]:
    """All utterances under ``root`` in ``layout`` (``auto`` detects it), sorted by ``utt_id``.

    ``options`` go to the layout's reader: ``splits`` (LibriSpeech), ``speakers`` (ESD),
    ``sets`` (VoxCeleb1); see :mod:`.layouts`.
    """
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in REGISTRY:
        raise UserFacingError(f"unknown corpus layout {layout!r}; known: {', '.join(LAYOUTS)}")
    reader = REGISTRY[layout].read
    accepted = set(inspect.signature(reader).parameters) - {"root"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UserFacingError(
            f"{root}: option(s) {', '.join(unknown)} do not apply to the {layout} layout "
            f"(it takes {', '.join(sorted(accepted)) or 'none'})"
        )
    return sorted(reader(root, **options), key=lambda u: u.utt_id)
