"""Audio reading through soundfile, with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

__all__ = ["AudioError", "read_audio"]


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the problem."""


def read_audio(
    path: Union[str, Path],
    expected_rate: Optional[int] = 16000,
    min_samples: int = 1,
) -> np.ndarray:
    """Read a mono float32 waveform in [-1, 1].

    Raises ``AudioError`` for an unreadable file, a wrong sample rate, an empty or too-short
    clip, or non-finite samples. Multi-channel audio is averaged to mono.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types (LibsndfileError, RuntimeError, OSError)
        raise AudioError(f"{path}: unreadable audio ({err})") from None
    if expected_rate is not None and rate != expected_rate:
        raise AudioError(f"{path}: sample rate {rate} Hz, expected {expected_rate} Hz")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if wav.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if wav.size < min_samples:
        raise AudioError(
            f"{path}: too short ({wav.size} samples = {wav.size / rate:.3f} s, need at least {min_samples})"
        )
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(wav)
