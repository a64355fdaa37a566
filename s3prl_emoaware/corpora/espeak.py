"""espeak-ng as a speech source: voices (speakers), prosody (emotion and intensity), phonemes.

espeak-ng is a formant synthesiser: real, intelligible speech whose voice, pitch, pitch
range, rate and loudness are all controllable, which is exactly what a test corpus for
emotion-aware models needs (and it runs anywhere, offline, in milliseconds per sentence).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Sequence

import numpy as np

from ..utils.errors import MissingToolError, UserFacingError

__all__ = ["Prosody", "espeak_binary", "synthesize", "phonemize", "SAMPLE_RATE"]

SAMPLE_RATE = 16000
_ESPEAK_RATE = 22050  # espeak-ng's native output rate
_STRESS_MARKS = "',"


@dataclass(frozen=True)
class Prosody:
    """espeak-ng prosody controls.

    Args:
        pitch: base pitch, 0-99 (espeak-ng ``-p``; 50 is the voice's default).
        pitch_range: pitch range, 0-100 (SSML ``<prosody range>``; 0 = monotone).
        rate: speaking rate in words per minute (``-s``; default 175).
        amplitude: loudness, 0-200 (``-a``; default 100).
    """

    pitch: float = 50
    pitch_range: float = 50
    rate: float = 165
    amplitude: float = 100

    def blend(self, other: "Prosody", weight: float) -> "Prosody":
        """Linear interpolation towards ``other`` (``weight`` 0 = self, 1 = other)."""
        w = float(np.clip(weight, 0.0, 1.0))
        return Prosody(
            *(
                a + w * (b - a)
                for a, b in zip(
                    (self.pitch, self.pitch_range, self.rate, self.amplitude),
                    (other.pitch, other.pitch_range, other.rate, other.amplitude),
                )
            )
        )


@lru_cache(maxsize=1)
def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise MissingToolError("espeak-ng not found on PATH: install it with `apt-get install espeak-ng`")
    return path


def _resample_to_16k(wav: np.ndarray, rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    if rate == SAMPLE_RATE:
        return wav
    g = gcd(rate, SAMPLE_RATE)
    return resample_poly(wav, SAMPLE_RATE // g, rate // g).astype(np.float32)


def synthesize(text: str, voice: str, prosody: Prosody) -> np.ndarray:
    """Speak ``text`` with espeak-ng voice ``voice`` (e.g. ``en-us+f2``): float32 mono at 16 kHz."""
    import soundfile as sf

    ssml = f'<speak><prosody range="{int(round(prosody.pitch_range))}">{text}</prosody></speak>'
    cmd = [
        espeak_binary(),
        "-m",
        "-v",
        voice,
        "-p",
        str(int(round(prosody.pitch))),
        "-s",
        str(int(round(prosody.rate))),
        "-a",
        str(int(round(prosody.amplitude))),
        "--stdout",
        ssml,
    ]
    result = subprocess.run(cmd, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise UserFacingError(
            f"espeak-ng failed for voice {voice!r} on {text!r}: "
            f"{result.stderr.decode(errors='replace').strip() or 'no audio produced'}"
        )
    # espeak-ng writes a WAV header with unknown length to a pipe; soundfile reads the frames present.
    wav, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    return _resample_to_16k(np.ascontiguousarray(wav), rate)


def phonemize(words: Sequence[str], voice: str = "en-us") -> Dict[str, List[str]]:
    """espeak-ng phonemes (``-x`` mnemonics, stress marks removed) for each word."""
    result: Dict[str, List[str]] = {}
    for word in sorted(set(words)):
        out = subprocess.run(
            [espeak_binary(), "-q", "-x", "--sep= ", "-v", voice, word.lower()],
            capture_output=True,
            text=True,
            check=False,
        )
        phones = [p.strip(_STRESS_MARKS) for p in out.stdout.split()]
        phones = [p for p in phones if p]
        if out.returncode != 0 or not phones:
            raise UserFacingError(f"espeak-ng gave no phonemes for {word!r}: {out.stderr.strip()}")
        result[word] = phones
    return result
