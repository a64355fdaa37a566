"""A least-recently-used map bounded by the total size of its values (bytes), for in-process memos.

Used by the hidden-state cache's memory tier (:mod:`s3prl_emoaware.s3prl_adapters.hidden_cache`) and
by the downstream datasets' decoded-audio memo (:class:`s3prl_emoaware.utils.audio.AudioMemo`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Generic, Hashable, Optional, Tuple, TypeVar, Union

__all__ = ["SizedLRU", "FileStamp", "file_stamp", "StampedLRU"]

V = TypeVar("V")


class SizedLRU(Generic[V]):
    """Values with a size each, at most ``limit_bytes`` in total (0 holds nothing); a lookup makes a
    value the most recent, and the least recent ones leave first when a new one needs room."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = int(limit_bytes)
        self._items: "OrderedDict[Hashable, Tuple[V, int]]" = OrderedDict()
        self.used_bytes = 0

    def get(self, key: Hashable) -> Optional[V]:
        held = self._items.get(key)
        if held is None:
            return None
        self._items.move_to_end(key)
        return held[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Hold ``value`` under ``key`` (replacing what was there); a value larger than the whole bound
        is not held (and what ``key`` held is dropped)."""
        self.pop(key)
        if size > self.limit_bytes:
            return
        self._items[key] = (value, size)
        self.used_bytes += size
        self._evict_to_fit()

    def resize(self, limit_bytes: int) -> None:
        """Change the bound; the least recent values leave until the rest fit."""
        self.limit_bytes = int(limit_bytes)
        self._evict_to_fit()

    def _evict_to_fit(self) -> None:
        while self.used_bytes > self.limit_bytes:
            self.pop(next(iter(self._items)))

    def pop(self, key: Hashable) -> None:
        held = self._items.pop(key, None)
        if held is not None:
            self.used_bytes -= held[1]


FileStamp = Tuple[int, int]  # (modification time in ns, size in bytes)


def file_stamp(path: Union[str, "os.PathLike[str]"]) -> Optional[FileStamp]:
    """The (mtime ns, size) of ``path``, or None when it cannot be stat'ed (the reader names the problem)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class StampedLRU(SizedLRU[Tuple[FileStamp, V]]):
    """A :class:`SizedLRU` of values made from files: each is held with the stamp of the file it was
    made from and served only while the file still has that stamp, so a rewritten file is read again."""

    def fresh(self, key: Hashable, stamp: Optional[FileStamp]) -> Optional[V]:
        """The value held under ``key`` if it was made from a file with ``stamp``, else None."""
        held = self.get(key)
        if held is None or stamp is None or held[0] != stamp:
            return None
        return held[1]

    def hold(self, key: Hashable, stamp: Optional[FileStamp], value: V, size: int) -> None:
        """Hold ``value`` made from a file with ``stamp``; without a stamp, drop what ``key`` held."""
        if stamp is None:
            self.pop(key)
        else:
            self.put(key, (stamp, value), size)
