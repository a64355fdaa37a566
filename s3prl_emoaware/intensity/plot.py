"""Picture of one clip: log-mel spectrogram, its intensity curve, and (optionally) masked spans."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..utils.atomic import atomic_path

__all__ = ["plot_intensity"]


def plot_intensity(
    wav: np.ndarray,
    curve: np.ndarray,
    out: Path,
    title: str = "",
    masked: Optional[np.ndarray] = None,
    segment: Optional[Tuple[float, float]] = None,
) -> Path:
    """Write a PNG: spectrogram (fbank grid), ``curve`` (one value per fbank frame) on top, frames in
    ``masked`` (boolean per frame, e.g. EMS's choice) shaded, and the recorded emotional ``segment``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..features import FbankConfig, FbankFrontend
    from .alignment import FBANK_GRID

    feats = FbankFrontend(FbankConfig(cmvn=False)).extract_one(torch.from_numpy(np.asarray(wav, np.float32)))
    times = FBANK_GRID.centres(feats.shape[0])
    if len(curve) != feats.shape[0]:
        raise ValueError(f"curve has {len(curve)} values for {feats.shape[0]} fbank frames")
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.imshow(
        feats.T.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, times[-1] + FBANK_GRID.hop / FBANK_GRID.sample_rate, 0, feats.shape[1]),
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    twin = ax.twinx()
    twin.plot(times, curve, color="#00E5FF", lw=2, label="intensity")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("intensity")
    if masked is not None:
        for t, m in zip(times, masked):
            if m:
                twin.axvspan(t - 0.005, t + 0.005, color="white", alpha=0.35, lw=0)
    if segment is not None:
        twin.axvline(segment[0], color="lime", ls="--", lw=1.5, label="emotional segment")
        twin.axvline(segment[1], color="lime", ls="--", lw=1.5)
    twin.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(out)
