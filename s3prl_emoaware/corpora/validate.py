"""Audio checks before a long job: every file readable, non-empty, at the expected rate (or one we resample).

The stock s3prl experts read audio deep inside their datasets, where a bad file ends a run
with a long traceback (or, with ``pre_load``, at start-up without naming the file). The
run-downstream wrapper checks the files a config will read first, from their headers only
(fast: no decoding), and reports the first bad one as one line naming it. Which files a config
reads, and whether its reader resamples other rates to 16 kHz (ours do: 48 kHz RAVDESS, 44.1 kHz
or 8 kHz copies; another rate is then logged, not refused), is the downstream registry's
(:mod:`s3prl_emoaware.downstreams.registry`).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Iterable, List

from ..utils.audio import AudioError, audio_info

logger = logging.getLogger(__name__)

__all__ = ["check_audio_headers", "downstream_audio_files", "check_downstream_audio"]


def check_audio_headers(paths: Iterable[Path], expected_rate: int = 16000, resampled: bool = False) -> int:
    """Raise ``AudioError`` for the first unreadable, empty or wrong-rate file; return the count checked.

    ``resampled``: the reader resamples to ``expected_rate``, so other rates are counted and
    logged (one line per rate) instead of refused.
    """
    n, other_rates = 0, Counter()
    for path in paths:
        info = audio_info(path)  # AudioError for a missing, empty, text or unreadable file
        if expected_rate and info.rate != expected_rate:
            if not resampled:
                raise AudioError(f"{path}: sample rate {info.rate} Hz, expected {expected_rate} Hz")
            other_rates[info.rate] += 1
        n += 1
    for rate, count in sorted(other_rates.items()):
        logger.info("%d of %d files are %d Hz: resampled to %d Hz when read", count, n, rate, expected_rate)
    return n


def check_downstream_audio(downstream: str, config: dict) -> int:
    """:func:`check_audio_headers` on the files a downstream config will read, at the rate policy of its
    reader (the downstream registry's ``audio_files`` and ``resamples``)."""
    from ..downstreams.registry import get

    spec = get(downstream)
    return check_audio_headers(
        downstream_audio_files(downstream, config), resampled=spec is not None and spec.resamples
    )


def downstream_audio_files(downstream: str, config: dict) -> List[Path]:
    """The audio files a downstream config will read (empty for unregistered downstreams)."""
    from ..downstreams.registry import get

    spec = get(downstream)
    return spec.audio_files(config) if spec is not None else []
