"""Linear alignment of a per-frame curve from one frame grid to another.

StrengthNet scores frames of 256-sample hops (16 ms, centred STFT frames); the SSL
front-ends use Kaldi frames of 160-sample hops and 400-sample windows (snip_edges). A
3 s clip has ~188 of the former and 298 of the latter. Matching frames by index (what the
EMS authors' code did: truncate or zero-pad) shifts the curve more and more along the
utterance; here each target frame takes the source curve's value at the target frame's
centre time, by linear interpolation between the two nearest source frame centres, and
holds the first/last value beyond the source's first/last centre. This is exact for any
pair of hop sizes and windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FrameGrid", "align_curve", "STRENGTHNET_GRID", "FBANK_GRID", "GRIDS"]


@dataclass(frozen=True)
class FrameGrid:
    """Where the frames of a feature sequence sit in time.

    Args:
        sample_rate: samples per second.
        hop: frame shift in samples.
        window: frame length in samples.
        snip_edges: Kaldi convention (frame i covers samples [i*hop, i*hop+window); no
            frame for a partial window). False = centred frames (``torch.stft(center=True)``,
            librosa): frame i is centred on sample i*hop and there are ``1 + samples // hop``.
    """

    sample_rate: int
    hop: int
    window: int
    snip_edges: bool = True

    def __post_init__(self):
        if self.sample_rate <= 0 or self.hop <= 0 or self.window <= 0:
            raise ValueError("sample_rate, hop and window must be positive")

    def num_frames(self, num_samples: int) -> int:
        """Frames this grid has for a clip of ``num_samples`` samples."""
        if num_samples < 0:
            raise ValueError("num_samples must be >= 0")
        if self.snip_edges:
            return 0 if num_samples < self.window else 1 + (num_samples - self.window) // self.hop
        return 1 + num_samples // self.hop

    def centres(self, n_frames: int) -> np.ndarray:
        """Centre time (seconds) of frames 0..n_frames-1."""
        offset = self.window / 2 if self.snip_edges else 0.0
        return (np.arange(n_frames) * self.hop + offset) / self.sample_rate

    def to_dict(self) -> dict:
        return {"sample_rate": self.sample_rate, "hop": self.hop, "window": self.window, "snip_edges": self.snip_edges}


STRENGTHNET_GRID = FrameGrid(16000, hop=256, window=512, snip_edges=False)
FBANK_GRID = FrameGrid(16000, hop=160, window=400, snip_edges=True)
GRIDS = {"fbank-25-10": FBANK_GRID, "strengthnet": STRENGTHNET_GRID}


def align_curve(values, source: FrameGrid, target: FrameGrid, num_target_frames: int) -> np.ndarray:
    """Resample ``values`` (one per ``source`` frame) onto ``num_target_frames`` frames of ``target``.

    ``num_target_frames`` is given explicitly (e.g. ``target.num_frames(len(wav))``) so the
    result has exactly as many values as the feature sequence it will be paired with.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D curve, got shape {values.shape}")
    if num_target_frames < 0:
        raise ValueError("num_target_frames must be >= 0")
    if num_target_frames == 0:
        return np.zeros(0, dtype=np.float32)
    if values.size == 0:
        raise ValueError("cannot align an empty curve onto a non-empty grid")
    if not np.isfinite(values).all():
        raise ValueError("curve contains NaN or infinite values")
    if source == target and values.size == num_target_frames:
        return values.astype(np.float32)
    src_t = source.centres(values.size)
    tgt_t = target.centres(num_target_frames)
    return np.interp(tgt_t, src_t, values).astype(np.float32)
