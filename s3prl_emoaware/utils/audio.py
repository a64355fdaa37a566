"""Audio reading through soundfile, with errors that name the file and the problem, resampled to the model's rate.

One reader for every place the package reads audio (corpus jobs, pre-training, intensity
extraction, StrengthNet training, embeddings, ``plot-intensity``, our downstream experts):

- :func:`audio_info` reads a header only and refuses what cannot be audio (a missing path, a
  folder, a 0-byte file, a text file named ``.wav``, an unreadable header, no samples); it also
  sees a WAV file truncated after its header was written (fewer samples than declared).
- :func:`read_audio` decodes: multi-channel audio is averaged to mono, other rates are
  resampled, a truncated WAV is read up to its end; NaN or infinite samples and clips shorter
  than ``min_samples`` are refused (:class:`AudioError`, one line naming the file).
- :class:`AudioReport` is what a long job keeps of its audio: what was done to it (one log line
  for the corpus: how many files were resampled, downmixed, read truncated) and which files it
  skipped and why (listed at the end); more than ``max_bad_fraction`` of the files bad is an error.
- :func:`screen_audio` keeps the items of a dataset whose header is usable and long enough,
  through such a report (our downstream experts' datasets).

Without a report, what was done is logged once per process and kind (a corpus is read at one
rate, and a line per file would bury the log).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import stat
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar, Union

import numpy as np

from .errors import UserFacingError
from .lru import StampedLRU, file_stamp

logger = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "AudioError",
    "TooManyBadFilesError",
    "AudioInfo",
    "AudioReport",
    "audio_info",
    "read_audio",
    "resample",
    "header_samples",
    "screen_audio",
    "AudioMemo",
    "DEFAULT_MAX_BAD_FRACTION",
    "DEFAULT_AUDIO_MEMORY_GB",
]

DEFAULT_MAX_BAD_FRACTION = 0.1  # a corpus with more than a tenth of its files bad is more likely the wrong folder

_LOGGED: Set[Tuple] = set()
_SNIFF = 512  # bytes looked at to tell a text file from a damaged audio file
_WAV_HEAD = 4096  # bytes searched for a WAV's data chunk (after fmt and, say, a LIST chunk)


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the problem."""


class TooManyBadFilesError(UserFacingError):
    """More than the allowed share of a job's audio files could not be used."""


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


@dataclass(frozen=True)
class AudioInfo:
    """A file's header: ``frames`` present (per channel), its ``rate`` and ``channels``;
    ``declared_frames`` is the WAV header's count when the file holds fewer (truncated), else None."""

    path: Path
    frames: int
    rate: int
    channels: int
    declared_frames: Optional[int] = None

    def samples_at(self, rate: Optional[int]) -> int:
        """Samples :func:`read_audio` returns at ``rate`` (rounded up: an estimate within a sample)."""
        if rate is None or rate == self.rate:
            return self.frames
        return math.ceil(self.frames * rate / self.rate)


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _wav_declared_frames(path: Path, channels: int) -> Optional[int]:
    """Frames a RIFF/WAV header declares in its ``data`` chunk (None when not a plain WAV or length unknown)."""
    with open(path, "rb") as f:
        head = f.read(_WAV_HEAD)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block = 12, None
    while pos + 8 <= len(head):
        tag, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if tag == b"fmt " and pos + 22 <= len(head):
            block = struct.unpack("<H", head[pos + 20 : pos + 22])[0]  # bytes per frame, all channels
        if tag == b"data":
            if not block or size in (0, 0xFFFFFFFF):  # streamed WAVs (a pipe) leave the length unknown
                return None
            return size // block
        pos += 8 + size + (size & 1)
    return None


def audio_info(path: Union[str, Path]) -> AudioInfo:
    """The header of ``path`` (no decoding). Raises ``AudioError`` naming the file for a missing path,
    a folder, a 0-byte file, a text file, an unreadable header or a file without samples."""
    import soundfile as sf

    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as err:
        raise AudioError(f"{path}: cannot open ({err.strerror or err})") from None
    size = st.st_size
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: a folder, not an audio file")
    if size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types (LibsndfileError, RuntimeError, OSError)
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
        if _looks_like_text(head):
            raise AudioError(f"{path}: unreadable audio header (a text file, not audio)") from None
        reason = str(err).strip().split(": ", 1)[-1] or type(err).__name__
        raise AudioError(f"{path}: unreadable audio header ({reason})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    declared = _wav_declared_frames(path, info.channels) if info.format == "WAV" else None
    return AudioInfo(
        path,
        int(info.frames),
        int(info.samplerate),
        int(info.channels),
        declared if declared is not None and declared > info.frames else None,
    )


def header_samples(path: Union[str, Path], rate: Optional[int] = None) -> Tuple[int, int]:
    """(samples, the file's sample rate) from the header alone (no decoding); ``samples`` counts
    them at ``rate`` when given (what :func:`read_audio` returns after resampling, rounded up:
    an estimate within a sample). Raises ``AudioError`` for an unreadable header."""
    info = audio_info(path)
    return info.samples_at(rate), info.rate


def _conversions(info: AudioInfo, rate: Optional[int]) -> List[Tuple[str, str]]:
    """(kind, detail) of what reading ``info`` at ``rate`` does to it."""
    done = []
    if rate is not None and info.rate != rate:
        done.append(("resampled", f"{info.rate} Hz to {rate} Hz"))
    if info.channels > 1:
        done.append(("downmixed", f"{info.channels} channels to mono"))
    if info.declared_frames is not None:
        done.append(("truncated", "read to the end of the file, shorter than its header declares"))
    return done


def _log_once(path: Path, kind: str, detail: str) -> None:
    if (kind, detail) not in _LOGGED:
        _LOGGED.add((kind, detail))
        if kind == "resampled":  # kept word for word: scripts grep for it
            orig, new = detail.split(" to ")
            logger.info(
                "resampling %s audio to %s (first file %s; further files at this rate are not logged)", orig, new, path
            )
        else:
            logger.info("%s: %s (first file %s; further files are not logged)", kind, detail, path)


class AudioReport:
    """What one job did to its audio files and which it skipped (thread-safe).

    Args:
        what: the job or corpus, for the log lines (``"intensity extraction of /data/iemocap"``).
        rate: the rate files are read at (None: their own).
        max_bad_fraction: :meth:`check` raises :class:`TooManyBadFilesError` when more than this share
            of the files seen was skipped (1.0: never).
    """

    def __init__(self, what: str, rate: Optional[int] = 16000, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION):
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise UserFacingError(f"max_bad_fraction must be within [0, 1], got {max_bad_fraction}")
        self.what, self.rate, self.max_bad_fraction = what, rate, max_bad_fraction
        self.done: Dict[Tuple[str, str], int] = Counter()
        self.skipped: Dict[str, str] = {}
        self.seen = 0
        self._noted: Set[str] = set()
        self._lock = threading.Lock()

    def note(self, info: AudioInfo) -> None:
        """Count what reading this file does (once per file)."""
        with self._lock:
            key = str(info.path)
            if key in self._noted:
                return
            self._noted.add(key)
            for kind_detail in _conversions(info, self.rate):
                self.done[kind_detail] += 1

    def count(self, n: int = 1) -> None:
        with self._lock:
            self.seen += n

    def skip(self, name: str, reason: str) -> None:
        """``name`` (an utterance id or path) left out for ``reason`` (a one-line message naming the file)."""
        with self._lock:
            if name not in self.skipped:
                self.skipped[name] = reason
                logger.warning("skipped %s", reason)

    def conversions(self) -> str:
        """One line: how many files were resampled, downmixed, read truncated (empty if none)."""
        parts = [f"{n} file{'s' if n > 1 else ''} {kind} ({detail})" for (kind, detail), n in sorted(self.done.items())]
        return "; ".join(parts)

    def skipped_summary(self, limit: int = 10) -> str:
        shown = "; ".join(reason for _, reason in sorted(self.skipped.items())[:limit])
        more = f"; ... and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return f"{len(self.skipped)} of {max(self.seen, len(self.skipped))} files skipped: {shown}{more}"

    def check(self) -> None:
        """Raise :class:`TooManyBadFilesError` when more than ``max_bad_fraction`` of the files were skipped."""
        seen = max(self.seen, len(self.skipped))
        if seen and len(self.skipped) > self.max_bad_fraction * seen:
            raise TooManyBadFilesError(
                f"{self.what}: {len(self.skipped)} of {seen} audio files are unusable (more than max_bad_fraction "
                f"{self.max_bad_fraction:g}; wrong folder? raise max_bad_fraction to go on without them): "
                + self.skipped_summary(limit=3).split(": ", 1)[1]
            )

    def log(self) -> None:
        """The corpus line (what was done) and the list of skipped files."""
        if self.done:
            logger.info("%s: %s", self.what, self.conversions())
        if self.skipped:
            logger.warning("%s: %s", self.what, self.skipped_summary())

    def finish(self) -> None:
        """:meth:`log`, then :meth:`check`."""
        self.log()
        self.check()


def screen_audio(
    items: Sequence[T],
    path_of: Callable[[T], Union[str, Path]],
    what: str,
    rate: Optional[int] = 16000,
    min_samples: int = 1,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    name_of: Optional[Callable[[T], str]] = None,
) -> Tuple[List[T], AudioReport]:
    """The ``items`` whose audio header is usable and at least ``min_samples`` long at ``rate``, from
    headers only; the others are skipped and listed, more than ``max_bad_fraction`` of them is an
    error (:class:`TooManyBadFilesError`), and one line says what reading the rest does."""
    report = AudioReport(what, rate, max_bad_fraction)
    report.count(len(items))
    kept = []
    for item in items:
        path = Path(path_of(item))
        name = name_of(item) if name_of is not None else str(path)
        try:
            info = audio_info(path)
        except AudioError as err:
            report.skip(name, str(err))
            continue
        samples = info.samples_at(rate)
        if samples < min_samples:
            report.skip(
                name, f"{path}: too short ({samples} samples at {rate or info.rate} Hz, need at least {min_samples})"
            )
            continue
        report.note(info)
        kept.append(item)
    report.finish()
    return kept, report


def read_audio(
    path: Union[str, Path],
    expected_rate: Optional[int] = 16000,
    min_samples: int = 1,
    resample_to_expected: bool = True,
    report: Optional[AudioReport] = None,
) -> np.ndarray:
    """Read a mono float32 waveform in [-1, 1] at ``expected_rate``.

    A file at another rate is resampled to ``expected_rate``; ``resample_to_expected=False``
    rejects it instead (strict mode), and ``expected_rate=None`` returns the file's own rate.
    Multi-channel audio is averaged to mono; a WAV truncated after its header was written is read
    up to its end. What was done goes to ``report`` (else it is logged once per process and kind).
    ``min_samples`` counts samples after resampling. Raises ``AudioError`` for an unusable file
    (see :func:`audio_info`), a wrong rate in strict mode, a damaged stream, an empty or
    too-short clip, or non-finite samples.
    """
    import soundfile as sf

    path = Path(path)
    info = audio_info(path)
    if expected_rate is not None and info.rate != expected_rate and not resample_to_expected:
        raise AudioError(f"{path}: sample rate {info.rate} Hz, expected {expected_rate} Hz")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types (LibsndfileError, RuntimeError, OSError)
        reason = str(err).strip().split(": ", 1)[-1] or type(err).__name__
        raise AudioError(f"{path}: unreadable audio, truncated or damaged ({reason})") from None
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if wav.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(wav).all():
        bad = int((~np.isfinite(wav)).sum())
        raise AudioError(f"{path}: audio contains NaN or infinite samples ({bad} of {wav.size})")
    if report is not None:
        report.note(info)
    else:
        for kind, detail in _conversions(info, expected_rate):
            _log_once(path, kind, detail)
    if expected_rate is not None and rate != expected_rate:
        wav, rate = resample(wav, rate, expected_rate), expected_rate
    if wav.size < min_samples:
        raise AudioError(
            f"{path}: too short ({wav.size} samples = {wav.size / rate:.3f} s, need at least {min_samples})"
        )
    return np.ascontiguousarray(wav)


DEFAULT_AUDIO_MEMORY_GB = 1.0


class AudioMemo:
    """:func:`read_audio` for a dataset read many times (every epoch of a downstream run): the samples
    of each file read are kept, up to ``limit_gb`` GB (10^9 bytes of float32; least recently used out
    first; 0 keeps nothing), and served again while the file's size and modification time are
    unchanged. Decoding and checking a file costs more than the downstream step that uses it once
    the upstream's hidden states are cached. Each call returns a fresh copy, so callers may modify it.
    """

    def __init__(self, limit_gb: float = DEFAULT_AUDIO_MEMORY_GB, **read_options):
        if not (isinstance(limit_gb, (int, float)) and limit_gb >= 0 and math.isfinite(limit_gb)):
            raise ValueError(f"audio_memory_gb must be a number >= 0, got {limit_gb!r}")
        self.read_options = read_options
        self._held: StampedLRU[np.ndarray] = StampedLRU(int(limit_gb * 1e9))
        self.hits = self.reads = 0

    def __call__(self, path: Union[str, Path]) -> np.ndarray:
        key = str(path)
        stamp = file_stamp(key)
        held = self._held.fresh(key, stamp)
        if held is not None:
            self.hits += 1
            return held.copy()
        wav = read_audio(path, **self.read_options)
        self.reads += 1
        self._held.hold(key, stamp, wav.copy(), wav.nbytes)
        return wav
