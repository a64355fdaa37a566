"""Frame-level prosodic measurements, utterance statistics, and the model-free energy proxy.

Everything is computed on the Kaldi fbank grid (25 ms windows, 10 ms hop, snip_edges), so
curves come out with exactly as many values as the SSL features of the same clip.

- :func:`frame_measurements`: log energy, pitch (autocorrelation over a 40 ms window
  centred on each frame, 70-400 Hz), voicing, spectral centroid per frame.
- :func:`utterance_statistics`: the fixed-length vector the relative-attributes ranker is
  trained on (pitch level/spread/range, energy level/spread/peak, voicing, spectral
  centroid, a syllable-rate proxy).
- :func:`energy_intensity`: ``--source energy``, a documented arousal proxy for users
  without a trained StrengthNet: the mean of the per-utterance min-max normalised log
  energy and absolute pitch deviation from the utterance's median voiced pitch, smoothed
  over 50 ms. It ranks frames *within* an utterance (which is what EMS masking uses); its
  values are not comparable across utterances.
- :func:`speech_frames`: an energy voice-activity test on any frame grid (StrengthNet's frame
  targets are 0 outside speech).
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from .alignment import FBANK_GRID, FrameGrid

__all__ = ["frame_measurements", "utterance_statistics", "energy_intensity", "speech_frames", "STAT_NAMES"]

_PITCH_WINDOW = 640  # 40 ms: two periods of a 50 Hz voice
_F0_MIN, _F0_MAX = 70.0, 400.0


def _frames(wav: torch.Tensor, window: int, hop: int, centre_offset: int) -> torch.Tensor:
    """Frames of ``window`` samples whose centres match the fbank grid's centres."""
    n = FBANK_GRID.num_frames(wav.numel())
    pad = max(0, window // 2 - centre_offset)
    padded = torch.nn.functional.pad(wav, (pad, pad + window))
    first = centre_offset + pad - window // 2
    return padded[first:].unfold(0, window, hop)[:n]  # a strided view: no copy of the samples


def frame_measurements(wav, sample_rate: int = 16000, centroid: bool = True) -> Dict[str, np.ndarray]:
    """Per fbank frame: ``log_energy``, ``pitch`` (Hz, 0 if unvoiced), ``voiced``, ``centroid`` (Hz; not
    computed with ``centroid=False``, which saves about a third of the time)."""
    if sample_rate != FBANK_GRID.sample_rate:
        raise ValueError(f"expected {FBANK_GRID.sample_rate} Hz audio, got {sample_rate}")
    wav = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    n = FBANK_GRID.num_frames(wav.numel())
    if n == 0:
        empty = np.zeros(0, dtype=np.float32)
        return {"log_energy": empty, "pitch": empty, "voiced": empty.astype(bool), "centroid": empty}
    hop, win = FBANK_GRID.hop, FBANK_GRID.window
    short = _frames(wav, win, hop, win // 2)
    rms = short.pow(2).mean(dim=1).sqrt()
    log_energy = torch.log(rms + 1e-5)
    out = {}
    if centroid:
        spectrum = torch.fft.rfft(short * torch.hann_window(win), n=512).abs()
        freqs = torch.linspace(0, sample_rate / 2, spectrum.shape[1])
        out["centroid"] = ((spectrum * freqs).sum(1) / spectrum.sum(1).clamp_min(1e-8)).numpy()

    long = _frames(wav, _PITCH_WINDOW, hop, win // 2)
    long = long - long.mean(dim=1, keepdim=True)
    power = torch.fft.rfft(long, n=2 * _PITCH_WINDOW).abs().pow(2)
    acf = torch.fft.irfft(power, n=2 * _PITCH_WINDOW)[:, :_PITCH_WINDOW]
    acf = acf / acf[:, :1].clamp_min(1e-8)
    lo, hi = int(sample_rate / _F0_MAX), int(sample_rate / _F0_MIN)
    peak, lag = acf[:, lo:hi].max(dim=1)
    loud = log_energy > (log_energy.max() - 4.0)  # within ~35 dB of the loudest frame
    voiced = (peak > 0.45) & loud
    pitch = torch.where(voiced, sample_rate / (lag + lo).float(), torch.zeros_like(peak))
    return {"log_energy": log_energy.numpy(), "pitch": pitch.numpy(), "voiced": voiced.numpy(), **out}


STAT_NAMES = (
    "pitch_mean",
    "pitch_std",
    "pitch_range",
    "energy_mean",
    "energy_std",
    "energy_p95",
    "voiced_fraction",
    "centroid_mean",
    "centroid_std",
    "syllable_rate",
)


def utterance_statistics(wav, sample_rate: int = 16000) -> np.ndarray:
    """The ranker's input: ``len(STAT_NAMES)`` utterance-level statistics (log-Hz for pitch)."""
    m = frame_measurements(wav, sample_rate)
    if m["log_energy"].size == 0:
        raise ValueError("clip shorter than one 25 ms frame")
    voiced_pitch = np.log(m["pitch"][m["voiced"]]) if m["voiced"].any() else np.zeros(1)
    e = m["log_energy"]
    smooth = np.convolve(e, np.ones(5) / 5, mode="same")
    peaks = np.sum((smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:]) & (smooth[1:-1] > e.max() - 2.5))
    duration = len(wav) / sample_rate
    return np.array(
        [
            voiced_pitch.mean(),
            voiced_pitch.std(),
            np.percentile(voiced_pitch, 95) - np.percentile(voiced_pitch, 5),
            e.mean(),
            e.std(),
            np.percentile(e, 95),
            m["voiced"].mean(),
            m["centroid"].mean() / 1000,
            m["centroid"].std() / 1000,
            peaks / duration,
        ],
        dtype=np.float64,
    )


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 1e-8 else np.zeros_like(x)


def energy_intensity(wav, sample_rate: int = 16000) -> np.ndarray:
    """Model-free arousal proxy in [0, 1] on the fbank grid (see the module docstring)."""
    m = frame_measurements(wav, sample_rate, centroid=False)
    if m["log_energy"].size == 0:
        return np.zeros(0, dtype=np.float32)
    deviation = np.zeros_like(m["pitch"])
    if m["voiced"].any():
        reference = np.median(m["pitch"][m["voiced"]])
        deviation[m["voiced"]] = np.abs(np.log(m["pitch"][m["voiced"]] / reference))
    curve = 0.5 * _minmax(m["log_energy"]) + 0.5 * _minmax(deviation)
    curve = np.convolve(curve, np.ones(5) / 5, mode="same")
    return _minmax(curve).astype(np.float32)


def speech_frames(wav, grid: FrameGrid, n_frames: int, threshold_db: float = 35.0) -> np.ndarray:
    """Boolean per frame of ``grid``: the frame's RMS is within ``threshold_db`` of the clip's loudest
    frame. Centred grids (``snip_edges=False``) are zero-padded by half a window on each side."""
    wav = np.asarray(wav, dtype=np.float32)
    if n_frames == 0:
        return np.zeros(0, dtype=bool)
    offset = 0 if grid.snip_edges else grid.window // 2
    padded = np.pad(wav, (offset, offset + grid.window))
    idx = np.arange(n_frames)[:, None] * grid.hop + np.arange(grid.window)[None, :]
    rms = np.sqrt(np.mean(padded[idx] ** 2, axis=1))
    level = 20 * np.log10(rms + 1e-5)
    return level > level.max() - threshold_db
