"""Audio checks before a long job: every file readable, non-empty, at the expected rate (or one we resample).

The stock s3prl experts read audio deep inside their datasets, where a bad file ends a run
with a long traceback (or, with ``pre_load``, at start-up without naming the file). The
run-downstream wrapper checks the files a config will read first, from their headers only
(fast: no decoding), and reports the first bad one as one line naming it. Our own downstreams
(``emotion_*``, ``phoneme_recognition``) resample other rates to 16 kHz when they read a file
(48 kHz RAVDESS, 44.1 kHz or 8 kHz copies), so for them another rate is logged, not refused.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable, List

from ..utils.audio import AudioError, audio_info
from .layouts.common import visible

logger = logging.getLogger(__name__)

__all__ = ["check_audio_headers", "downstream_audio_files", "check_downstream_audio", "RESAMPLING_DOWNSTREAMS"]

RESAMPLING_DOWNSTREAMS = ("emotion_cremad", "emotion_esd", "emotion_ravdess", "phoneme_recognition")


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
    """:func:`check_audio_headers` on the files of a shipped downstream config, at the rate policy of its reader."""
    return check_audio_headers(downstream_audio_files(downstream, config),
                               resampled=downstream in RESAMPLING_DOWNSTREAMS)


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def downstream_audio_files(downstream: str, config: dict) -> List[Path]:
    """The audio files a shipped downstream config will read (empty for unknown downstreams)."""
    if downstream == "emotion":
        root = Path(_get(config, "downstream_expert.datarc.root"))
        meta = Path(_get(config, "downstream_expert.datarc.meta_data"))
        fold = str(_get(config, "downstream_expert.datarc").get("test_fold") or "fold1").replace("fold", "Session")
        files = []
        for name in ("train_meta_data.json", "test_meta_data.json"):
            path = meta / fold / name
            if path.is_file():
                files += [root / item["path"] for item in json.loads(path.read_text())["meta_data"]]
        return files
    if downstream == "fluent_commands":
        root = Path(_get(config, "downstream_expert.datarc.file_path"))
        files = []
        for split in ("train", "valid", "test"):
            with open(root / "data" / f"{split}_data.csv", newline="") as f:
                files += [root / row["path"] for row in csv.DictReader(f)]
        return files
    if downstream == "phoneme_recognition":
        corpus = _get(config, "downstream_expert.corpus")
        root = Path(corpus["path"])
        return [p for split in corpus["train"] + corpus["dev"] + corpus["test"]
                for p in visible(root / split, "*/*/*.flac")]
    if downstream.startswith("emotion_"):
        from .reader import read_corpus

        datarc = _get(config, "downstream_expert.datarc")
        return [u.path for u in read_corpus(datarc["root"], datarc.get("layout", "auto"),
                                            **dict(datarc.get("reader_options") or {}))]
    return []
