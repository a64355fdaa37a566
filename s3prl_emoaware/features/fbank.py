"""Kaldi-style log-mel filterbank front-end with optional deltas and utterance CMVN.

It computes what s3prl's baseline extracter (``upstream/baseline/extracter.py``, used by
Mockingjay) and NPC's ``audio.py`` compute for the same settings, so checkpoints move
between s3prl and this package with identical inputs. Frames follow Kaldi's
``snip_edges=True`` convention: ``1 + (samples - window) // hop`` frames, none for a clip
shorter than one window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchaudio.compliance import kaldi
from torchaudio.transforms import ComputeDeltas

from ..config import check_choice, check_non_negative, check_positive

__all__ = ["FbankConfig", "FbankFrontend", "fbank_frontend", "num_frames"]


KALDI_WINDOWS = ("povey", "hamming", "hanning", "rectangular", "blackman")


@dataclass
class FbankConfig:
    """Front-end settings (the ``frontend`` section of the upstream configs).

    Args:
        sample_rate: input sample rate in Hz; waveforms at another rate are an error.
        num_mel_bins: number of mel bands.
        frame_length_ms: analysis window in ms (25 in SUPERB).
        frame_shift_ms: hop in ms (10 in SUPERB); sets the upstream downsample rate.
        window_type: Kaldi window: ``povey`` (s3prl Mockingjay) or ``hamming`` (s3prl NPC).
        delta_order: 0 = static only, 2 = static + delta + delta-delta (Mockingjay: 240 dims).
        delta_win_length: window of torchaudio's ``ComputeDeltas``.
        cmvn: per-utterance normalisation over time: subtract each band's mean.
        cmvn_std: with ``cmvn``, also divide by each band's standard deviation (s3prl's CMVN of
            Mockingjay and NPC). SpeechBrain's ECAPA recipes normalise the mean only
            (``InputNormalization(norm_type="sentence", std_norm=False)``), which keeps each
            band's dynamic range: that is where pitch range and loudness dynamics, i.e. much of
            the emotion, live. The ECAPA configs set it false.
        dither: Kaldi dither; 0 keeps features deterministic.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window_type: str = "povey"
    delta_order: int = 0
    delta_win_length: int = 5
    cmvn: bool = True
    cmvn_std: bool = True
    dither: float = 0.0

    def __post_init__(self):
        check_positive(self, "sample_rate", "num_mel_bins", "frame_length_ms", "frame_shift_ms")
        check_choice(self, "window_type", KALDI_WINDOWS)
        if self.delta_order not in (0, 1, 2):
            raise ValueError(f"delta_order must be 0, 1 or 2, got {self.delta_order}")
        if self.frame_length_ms < self.frame_shift_ms:
            raise ValueError(
                f"frame_length_ms must be >= frame_shift_ms, got {self.frame_length_ms} < {self.frame_shift_ms}"
            )
        if self.hop_samples < 1:
            raise ValueError(f"frame_shift_ms {self.frame_shift_ms} is under one sample at {self.sample_rate} Hz")
        if self.delta_order and self.delta_win_length < 3:
            raise ValueError(f"delta_win_length must be >= 3, got {self.delta_win_length}")
        check_non_negative(self, "dither")

    @property
    def hop_samples(self) -> int:
        return round(self.frame_shift_ms * self.sample_rate / 1000)

    @property
    def window_samples(self) -> int:
        return round(self.frame_length_ms * self.sample_rate / 1000)

    @property
    def feature_dim(self) -> int:
        return self.num_mel_bins * (1 + self.delta_order)


def num_frames(num_samples: int, window: int, hop: int) -> int:
    """Number of frames with Kaldi's ``snip_edges=True`` (0 when shorter than one window)."""
    if num_samples < window:
        return 0
    return 1 + (num_samples - window) // hop


class FbankFrontend(nn.Module):
    """Waveforms -> padded log-mel features.

    Args:
        config: the front-end settings.
    """

    def __init__(self, config: FbankConfig):
        super().__init__()
        self.config = config
        self.deltas = ComputeDeltas(win_length=config.delta_win_length)

    @property
    def output_dim(self) -> int:
        return self.config.feature_dim

    @property
    def downsample_rate(self) -> int:
        return self.config.hop_samples

    def extract_one(self, wav: Tensor) -> Tensor:
        """One waveform ``(samples,)`` -> features ``(frames, feature_dim)``."""
        c = self.config
        if wav.dim() != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {tuple(wav.shape)}")
        if wav.numel() < c.window_samples:
            raise ValueError(f"waveform of {wav.numel()} samples is shorter than one {c.frame_length_ms} ms window")
        feats = kaldi.fbank(
            wav.float().unsqueeze(0),
            sample_frequency=c.sample_rate,
            num_mel_bins=c.num_mel_bins,
            frame_length=c.frame_length_ms,
            frame_shift=c.frame_shift_ms,
            window_type=c.window_type,
            dither=c.dither,
        )
        if c.delta_order:
            stack = [feats]
            for _ in range(c.delta_order):
                stack.append(self.deltas(stack[-1].t().unsqueeze(0)).squeeze(0).t())
            feats = torch.cat(stack, dim=-1)
        if c.cmvn:
            feats = feats - feats.mean(dim=0, keepdim=True)
            if c.cmvn_std:
                # eps outside the std, as s3prl's CMVN, so features match to float precision
                feats = feats / (1e-10 + feats.std(dim=0, keepdim=True))
        return feats

    def forward(self, wavs: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """``wavs``: list of ``(samples_i,)`` -> ``(B, T_max, D)`` zero-padded and lengths ``(B,)``."""
        feats: List[Tensor] = [self.extract_one(w) for w in wavs]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        padded = nn.utils.rnn.pad_sequence(feats, batch_first=True)
        return padded, lengths


def fbank_frontend(**overrides) -> FbankFrontend:
    """Factory: ``fbank_frontend(delta_order=2)`` etc."""
    return FbankFrontend(FbankConfig(**overrides))
