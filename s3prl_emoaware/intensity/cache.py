"""On-disk cache of per-utterance intensity curves, aligned to a named feature frame grid.

Layout of ``CACHE/``::

    index.json        {"version": 1, "source": "strengthnet"|"energy", "grid": {...FrameGrid...},
                       "grid_name": "fbank-25-10",
                       "items": {utt_id: {"file": "arrays/<utt_id>.npy", "num_frames": N, "audio": path}},
                       "failed": {utt_id: "reason"}}
    arrays/<utt_id>.npy   float32 (N,) in [0, 1], N = the grid's frame count for that clip

Every array is written atomically before it is entered in the index, and the index is
rewritten atomically, so a killed extraction leaves a consistent cache: re-running it
skips the finished items and does the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..utils.atomic import atomic_path, atomic_write_json
from ..utils.errors import UserFacingError
from .alignment import FrameGrid

__all__ = ["IntensityCache", "IntensityCacheWriter", "MissingIntensityError"]

VERSION = 1


class MissingIntensityError(UserFacingError):
    """An utterance has no intensity curve in the cache (or the cache does not exist)."""


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
            raise MissingIntensityError(f"{index}: unsupported cache version {data.get('version')!r}")
        self.source: str = data["source"]
        self.grid = FrameGrid(**data["grid"])
        self.grid_name: Optional[str] = data.get("grid_name")
        self.items: Dict[str, dict] = data["items"]
        self.failed: Dict[str, str] = data.get("failed", {})

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.items

    def __len__(self) -> int:
        return len(self.items)

    def get(self, utt_id: str) -> np.ndarray:
        item = self.items.get(utt_id)
        if item is None:
            reason = f" (extraction failed: {self.failed[utt_id]})" if utt_id in self.failed else ""
            raise MissingIntensityError(f"utterance {utt_id!r} has no intensity curve in {self.root}{reason}; "
                                        + _build_hint(self.root))
        values = np.load(self.root / item["file"])
        if values.shape != (item["num_frames"],):
            raise MissingIntensityError(f"{self.root / item['file']}: expected {item['num_frames']} frames, "
                                        f"found shape {values.shape}; rebuild the cache")
        return values


class IntensityCacheWriter:
    """Appends curves to a cache folder (creating or resuming it)."""

    def __init__(self, root, source: str, grid: FrameGrid, grid_name: Optional[str] = None,
                 flush_every: int = 50):
        self.root = Path(root)
        (self.root / "arrays").mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.json"
        if self.index_path.is_file():
            data = json.loads(self.index_path.read_text())
            if data["source"] != source or FrameGrid(**data["grid"]) != grid:
                raise UserFacingError(f"{self.root}: existing cache has source {data['source']!r} and grid "
                                      f"{data['grid']}; refusing to mix with {source!r} {grid.to_dict()} "
                                      "(use another --out)")
            self.items, self.failed = data["items"], data.get("failed", {})
        else:
            self.items, self.failed = {}, {}
        self.source, self.grid, self.grid_name = source, grid, grid_name
        self.flush_every = flush_every
        self._pending = 0

    def done(self, utt_id: str) -> bool:
        return utt_id in self.items and (self.root / self.items[utt_id]["file"]).is_file()

    def add(self, utt_id: str, values: np.ndarray, audio: str) -> None:
        values = np.asarray(values, dtype=np.float32)
        rel = f"arrays/{utt_id}.npy"
        with atomic_path(self.root / rel) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, values)
        self.items[utt_id] = {"file": rel, "num_frames": int(values.shape[0]), "audio": str(audio)}
        self.failed.pop(utt_id, None)
        self._tick()

    def fail(self, utt_id: str, reason: str) -> None:
        self.failed[utt_id] = reason
        self._tick()

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        atomic_write_json(self.index_path, {
            "version": VERSION, "source": self.source, "grid": self.grid.to_dict(), "grid_name": self.grid_name,
            "items": dict(sorted(self.items.items())), "failed": dict(sorted(self.failed.items()))})
        self._pending = 0
