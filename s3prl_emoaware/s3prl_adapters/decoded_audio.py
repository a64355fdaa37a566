"""Decoded audio kept in memory for s3prl's own datasets, in a runner process with the hidden-state cache on.

With the upstream's hidden states cached, what is left of a frozen-upstream run is the stock
runner's own work, and decoding audio is a large part of it: s3prl's datasets read through
``torchaudio.load`` (torchcodec and FFmpeg, about 16 ms per short clip against the fraction of a
millisecond of the cached states), the IEMOCAP emotion dataset all of its files at every runner
build (train, then test, for each of the 5 folds of a batch), and Fluent Speech Commands every
file at every epoch. :func:`torchaudio_load_memo` wraps ``torchaudio.load`` so that a file read
once in the process is served from memory while its size and modification time are unchanged.
The samples are the ones the decoder returned (a fresh copy per call), so runs give the same
results; only the time goes.

It is installed by the launcher (:mod:`.launch`) with the hidden-state cache, never with
``--no-hidden-cache``: the uncached path stays s3prl's own, the reference the cache is held to.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from ..utils.audio import DEFAULT_AUDIO_MEMORY_GB
from ..utils.lru import StampedLRU, file_stamp

__all__ = ["torchaudio_load_memo"]


@contextlib.contextmanager
def torchaudio_load_memo(limit_gb: float = DEFAULT_AUDIO_MEMORY_GB) -> Iterator[StampedLRU]:
    """While active, ``torchaudio.load(path, ...)`` of a file path is decoded once per (file, arguments)
    and kept, up to ``limit_gb`` GB of samples (least recently used out first); yields the memo.

    Anything but a path to an existing file (a file object, a URL) goes to the decoder every time.
    """
    import torchaudio

    original = torchaudio.load
    held: StampedLRU = StampedLRU(int(limit_gb * 1e9))

    def load(uri, *args, **kwargs):
        stamp = file_stamp(uri) if isinstance(uri, (str, os.PathLike)) else None
        if stamp is None:  # a file object, a URL, or no such file (the decoder names the problem)
            return original(uri, *args, **kwargs)
        key = (os.path.realpath(uri), args, tuple(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:  # unhashable options
            return original(uri, *args, **kwargs)
        got = held.fresh(key, stamp)
        if got is not None:
            wav, rate = got
            return wav.clone(), rate
        wav, rate = original(uri, *args, **kwargs)
        held.hold(key, stamp, (wav.clone(), rate), wav.numel() * wav.element_size())
        return wav, rate

    torchaudio.load = load
    try:
        yield held
    finally:
        torchaudio.load = original
