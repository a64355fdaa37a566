"""Content hashes of files and arrays, for the keys and checks of the caches."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Union

__all__ = ["file_sha256", "bytes_blake2b"]


def file_sha256(path: Union[str, Path]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bytes_blake2b(data) -> str:
    """blake2b (128 bits) of a buffer (a contiguous numpy array's memory: no copy)."""
    return hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).hexdigest()
