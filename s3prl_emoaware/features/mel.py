"""StrengthNet's front-end: (log-)mel spectrogram on its own 16 ms grid (the fbank one is :mod:`.fbank`)."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
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

    def each(self, wavs: Sequence[Tensor]) -> List[Tensor]:
        """``[self(w[None])[0] for w in wavs]`` for 1-D waveforms of any lengths, in one pass over the batch.

        Each clip is reflect-padded on its own (what ``center=True`` does), the batch zero-padded after
        that and framed without centring: a clip's frames read only its own samples, so its (T, n_mels)
        mel is the one computed alone. Five operator calls a batch instead of five a clip: beside a
        model that keeps both cores busy, each call's parallel region waits for preempted threads (the
        mels of a batch took 2 ms a clip one by one, measured in the intensity extraction).
        """
        if not wavs:
            return []
        spec = self.mel.spectrogram
        half = spec.n_fft // 2
        # numpy's "reflect" is torch's: the same samples, at a tenth of the cost of torch's 1-D pad op here
        padded = [torch.from_numpy(np.pad(w.numpy(), half, mode="reflect")) for w in wavs]
        frames = torch.stft(
            torch.nn.utils.rnn.pad_sequence(padded, batch_first=True),
            n_fft=spec.n_fft,
            hop_length=spec.hop_length,
            win_length=spec.win_length,
            window=spec.window,
            center=False,
            return_complex=True,
        )
        mel = self.mel.mel_scale(frames.abs()).transpose(-1, -2)  # (B, T_max, n_mels)
        if self.log:
            mel = torch.log(mel + 1e-5)
        return [m[: 1 + w.shape[-1] // spec.hop_length] for m, w in zip(mel, wavs)]
