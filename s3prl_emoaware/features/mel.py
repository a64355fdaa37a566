"""StrengthNet's front-end: (log-)mel spectrogram on its own 16 ms grid (the fbank one is :mod:`.fbank`)."""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor, nn

from ..intensity.alignment import STRENGTHNET_GRID

__all__ = ["MelFrontend"]


class MelFrontend(nn.Module):
    """Waveform ``(B, samples)`` -> (log-)mel ``(B, T, n_mels)`` on StrengthNet's 16 ms grid."""

    def __init__(self, n_mels: int = 80, log: bool = True):
        super().__init__()
        grid = STRENGTHNET_GRID
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=grid.sample_rate,
            n_fft=512,
            win_length=grid.window,
            hop_length=grid.hop,
            n_mels=n_mels,
            window_fn=torch.hamming_window,
            power=1.0,
            center=True,
        )
        self.log = log

    def forward(self, wavs: Tensor) -> Tensor:
        mel = self.mel(wavs).transpose(-1, -2)
        return torch.log(mel + 1e-5) if self.log else mel
