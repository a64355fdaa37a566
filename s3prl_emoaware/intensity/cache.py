"""On-disk cache of per-utterance intensity curves, aligned to a named feature frame grid.

Layout of ``CACHE/``::

    index.json        {"version": 2, "source": "strengthnet"|"energy", "grid": {...FrameGrid...},
                       "grid_name": "fbank-25-10",
                       "items": {utt_id: {"file": "arrays/<utt_id>.npy", "num_frames": N, "audio": path,
                                          "audio_hash": "<blake2b-128 of the decoded samples>"}},
                       "failed": {utt_id: "reason"}}
    arrays/<utt_id>.npy   float32 (N,) in [0, 1], N = the grid's frame count for that clip

Each curve records a content hash of the audio it was computed from (:func:`audio_hash`:
the decoded float32 samples, so it does not depend on the file's container or path).
Corpora share utterance ids (the labelled and the pre-training IEMOCAP-layout corpora both
have ``Ses01F_impro01_F000``), and a clip of the same length has the same frame count, so
``IntensityCache.get(utt_id, wav)`` compares the hash of the caller's audio with the recorded
one and raises :class:`IntensityMismatchError` naming the utterance and both files when they
differ. Resuming an extraction into a cache whose entry for an id came from another file is
refused the same way.

Every array is written atomically before it is entered in the index, and the index is
rewritten atomically, so a killed extraction leaves a consistent cache: re-running it
skips the finished items and does the rest. The index is rewritten after ``flush_every``
new entries and at least ``flush_seconds`` since the last rewrite (and at the end), so a
corpus of 100k clips does not rewrite a growing index 2000 times; a kill loses at most
that much work.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..utils.atomic import atomic_path, atomic_write_json
from ..utils.errors import UserFacingError
from .alignment import FrameGrid

__all__ = ["IntensityCache", "IntensityCacheWriter", "MissingIntensityError", "IntensityMismatchError",
           "audio_hash"]

VERSION = 2  # 2: per-item audio_hash


class MissingIntensityError(UserFacingError):
    """An utterance has no intensity curve in the cache (or the cache does not exist)."""


class IntensityMismatchError(UserFacingError):
    """A cached curve was computed from other audio than the caller's (same utterance id)."""


def audio_hash(wav) -> str:
    """Content hash of a waveform: blake2b (128 bits) of its float32 samples."""
    samples = np.ascontiguousarray(np.asarray(wav, dtype=np.float32))
    return hashlib.blake2b(memoryview(samples).cast("B"), digest_size=16).hexdigest()  # no copy


def _build_hint(root: Path) -> str:
    return f"build it with `s3prl-emoaware intensity --corpus CORPUS --out {root}`"


class IntensityCache:
    """Read access to a cache folder."""

    def __init__(self, root):
        self.root = Path(root)
        index = self.root / "index.json"
        if not index.is_file():
            raise MissingIntensityError(f"{self.root}: no intensity cache here (missing index.json); "
                                        + _build_hint(self.root))
        data = json.loads(index.read_text())
        if data.get("version") != VERSION:
            raise MissingIntensityError(f"{index}: unsupported cache version {data.get('version')!r} (this "
                                        f"package writes version {VERSION}, with audio hashes); rebuild it into "
                                        "a new folder with `s3prl-emoaware intensity`")
        self.source: str = data["source"]
        self.grid = FrameGrid(**data["grid"])
        self.grid_name: Optional[str] = data.get("grid_name")
        self.items: Dict[str, dict] = data["items"]
        self.failed: Dict[str, str] = data.get("failed", {})

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.items

    def __len__(self) -> int:
        return len(self.items)

    def get(self, utt_id: str, wav=None) -> np.ndarray:
        """The curve of ``utt_id``; with ``wav`` (the caller's decoded audio of that utterance), first
        check that the curve was computed from the same audio (:class:`IntensityMismatchError` if not)."""
        item = self.items.get(utt_id)
        if item is None:
            reason = f" (extraction failed: {self.failed[utt_id]})" if utt_id in self.failed else ""
            raise MissingIntensityError(f"utterance {utt_id!r} has no intensity curve in {self.root}{reason}; "
                                        + _build_hint(self.root))
        values = np.load(self.root / item["file"])
        if values.shape != (item["num_frames"],):
            raise MissingIntensityError(f"{self.root / item['file']}: expected {item['num_frames']} frames, "
                                        f"found shape {values.shape}; rebuild the cache")
        if wav is not None:
            self.check_audio(utt_id, wav)
        return values

    def check_audio(self, utt_id: str, wav) -> None:
        """Raise :class:`IntensityMismatchError` unless ``wav`` is the audio ``utt_id``'s curve came from."""
        item = self.items[utt_id]
        if audio_hash(wav) != item["audio_hash"]:
            raise IntensityMismatchError(
                f"{self.root}: the intensity curve of utterance {utt_id!r} was computed from other audio "
                f"({item['audio']}) than the one given (content hashes differ): the cache belongs to another "
                f"corpus that shares utterance ids; {_build_hint(self.root)} for this corpus, in a new folder")


class IntensityCacheWriter:
    """Appends curves to a cache folder (creating or resuming it)."""

    def __init__(self, root, source: str, grid: FrameGrid, grid_name: Optional[str] = None,
                 flush_every: int = 50, flush_seconds: float = 10.0):
        self.root = Path(root)
        (self.root / "arrays").mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.json"
        if self.index_path.is_file():
            data = json.loads(self.index_path.read_text())
            if data.get("version") != VERSION:
                raise UserFacingError(f"{self.index_path}: cache version {data.get('version')!r}, this package "
                                      f"writes {VERSION} (with audio hashes); use another --out")
            if data["source"] != source or FrameGrid(**data["grid"]) != grid:
                raise UserFacingError(f"{self.root}: existing cache has source {data['source']!r} and grid "
                                      f"{data['grid']}; refusing to mix with {source!r} {grid.to_dict()} "
                                      "(use another --out)")
            self.items, self.failed = data["items"], data.get("failed", {})
        else:
            self.items, self.failed = {}, {}
        self.source, self.grid, self.grid_name = source, grid, grid_name
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._pending = 0
        self._flushed_at = time.monotonic()

    def done(self, utt_id: str, audio: Optional[str] = None) -> bool:
        """Whether ``utt_id`` has its curve already; an entry made from another file than ``audio``
        (another corpus with the same ids) is an error, not a skip."""
        item = self.items.get(utt_id)
        if item is None or not (self.root / item["file"]).is_file():
            return False
        if audio is not None and item["audio"] != str(audio):
            raise IntensityMismatchError(
                f"{self.root}: utterance {utt_id!r} is cached from {item['audio']}, not {audio}: this cache "
                "belongs to another corpus; use another --out")
        return True

    def add(self, utt_id: str, values: np.ndarray, audio: str, wav) -> None:
        """Record ``values`` for ``utt_id``, computed from ``wav`` (decoded from the file ``audio``)."""
        values = np.asarray(values, dtype=np.float32)
        rel = f"arrays/{utt_id}.npy"
        with atomic_path(self.root / rel) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, values)
        self.items[utt_id] = {"file": rel, "num_frames": int(values.shape[0]), "audio": str(audio),
                              "audio_hash": audio_hash(wav)}
        self.failed.pop(utt_id, None)
        self._tick()

    def fail(self, utt_id: str, reason: str) -> None:
        self.failed[utt_id] = reason
        self._tick()

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= self.flush_every and time.monotonic() - self._flushed_at >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        atomic_write_json(self.index_path, {
            "version": VERSION, "source": self.source, "grid": self.grid.to_dict(), "grid_name": self.grid_name,
            "items": dict(sorted(self.items.items())), "failed": dict(sorted(self.failed.items()))})
        self._pending = 0
        self._flushed_at = time.monotonic()
