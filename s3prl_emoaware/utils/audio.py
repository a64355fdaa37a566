"""Audio reading through soundfile, with errors that name the file and the problem, resampled to the model's rate."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional, Set, Tuple, Union

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["AudioError", "read_audio", "resample", "header_samples"]

_LOGGED: Set[Tuple[int, int]] = set()


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the problem."""


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)  # the sinc kernel is built once per rate pair


def resample(wav: np.ndarray, orig: int, new: int) -> np.ndarray:
    """``wav`` (samples,) float32 from ``orig`` Hz to ``new`` Hz (torchaudio's windowed-sinc, cached kernels)."""
    if orig == new:
        return wav
    import torch

    with torch.no_grad():
        out = _resampler(int(orig), int(new))(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
    return out.numpy()


def _log_resampling(path: Path, orig: int, new: int) -> None:
    # once per rate pair and process: a corpus is read at one rate, and a line per file would bury the log
    if (orig, new) not in _LOGGED:
        _LOGGED.add((orig, new))
        logger.info("resampling %d Hz audio to %d Hz (first file %s; further files at this rate are not logged)",
                    orig, new, path)


def header_samples(path: Union[str, Path], rate: Optional[int] = None) -> Tuple[int, int]:
    """(samples, the file's sample rate) from the header alone (no decoding); ``samples`` counts
    them at ``rate`` when given (what :func:`read_audio` returns after resampling, rounded up:
    an estimate within a sample). Raises ``AudioError`` for an unreadable header."""
    import math

    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types (LibsndfileError, RuntimeError, OSError)
        raise AudioError(f"{path}: unreadable audio header ({err})") from None
    if rate is None or info.samplerate == rate:
        return info.frames, info.samplerate
    return math.ceil(info.frames * rate / info.samplerate), info.samplerate


def read_audio(
    path: Union[str, Path],
    expected_rate: Optional[int] = 16000,
    min_samples: int = 1,
    resample_to_expected: bool = True,
) -> np.ndarray:
    """Read a mono float32 waveform in [-1, 1] at ``expected_rate``.

    A file at another rate is resampled to ``expected_rate`` (logged once per rate
    pair); ``resample_to_expected=False`` rejects it instead (strict mode), and
    ``expected_rate=None`` returns the file's own rate. ``min_samples`` counts samples after
    resampling. Raises ``AudioError`` for an unreadable file, a wrong rate in strict mode, an
    empty or too-short clip, or non-finite samples. Multi-channel audio is averaged to mono.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types (LibsndfileError, RuntimeError, OSError)
        raise AudioError(f"{path}: unreadable audio ({err})") from None
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if wav.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if expected_rate is not None and rate != expected_rate:
        if not resample_to_expected:
            raise AudioError(f"{path}: sample rate {rate} Hz, expected {expected_rate} Hz")
        _log_resampling(path, rate, expected_rate)
        wav, rate = resample(wav, rate, expected_rate), expected_rate
    if wav.size < min_samples:
        raise AudioError(
            f"{path}: too short ({wav.size} samples = {wav.size / rate:.3f} s, need at least {min_samples})"
        )
    return np.ascontiguousarray(wav)
