"""Alignment of intensity curves between frame grids."""

import numpy as np
import pytest

from s3prl_emoaware.features import num_frames
from s3prl_emoaware.intensity.alignment import FBANK_GRID, STRENGTHNET_GRID, FrameGrid, align_curve


def test_identity_when_grids_match():
    curve = np.random.default_rng(0).random(57)
    assert np.array_equal(align_curve(curve, FBANK_GRID, FBANK_GRID, 57), curve.astype(np.float32))


def test_exact_values_at_shared_frame_times():
    # 8 kHz-hop grid vs 4 kHz: every second target frame centre coincides with a source centre
    src = FrameGrid(16000, hop=320, window=640)
    tgt = FrameGrid(16000, hop=160, window=640)
    curve = np.array([0.0, 1.0, 4.0, 9.0, 16.0])
    out = align_curve(curve, src, tgt, 9)
    assert np.allclose(out[::2], curve)
    assert np.allclose(out[1::2], (curve[:-1] + curve[1:]) / 2)  # linear in between


def test_monotone_stays_monotone_and_ends_are_held():
    curve = np.sort(np.random.default_rng(1).random(188))
    n = num_frames(48000, 400, 160)  # 3 s: 298 fbank frames
    out = align_curve(curve, STRENGTHNET_GRID, FBANK_GRID, n)
    assert out.shape == (298,) and np.all(np.diff(out) >= -1e-7)
    assert out.min() >= curve.min() - 1e-6 and out.max() <= curve.max() + 1e-6


def test_follows_time_not_index():
    # a step at 1.5 s in the 16 ms grid must stay at 1.5 s on the 10 ms grid (index matching would put it at 0.94 s)
    src_times = STRENGTHNET_GRID.centres(188)
    curve = (src_times >= 1.5).astype(float)
    out = align_curve(curve, STRENGTHNET_GRID, FBANK_GRID, 298)
    tgt_times = FBANK_GRID.centres(298)
    assert np.all(out[tgt_times < 1.48] == 0) and np.all(out[tgt_times > 1.52] == 1)


def test_frame_counts_and_edge_cases():
    assert FBANK_GRID.num_frames(399) == 0 and FBANK_GRID.num_frames(400) == 1
    assert FBANK_GRID.num_frames(16000) == num_frames(16000, 400, 160) == 98
    assert STRENGTHNET_GRID.num_frames(48000) == 188
    assert align_curve([0.3], STRENGTHNET_GRID, FBANK_GRID, 0).shape == (0,)  # shorter than one window
    assert np.allclose(align_curve([0.3], STRENGTHNET_GRID, FBANK_GRID, 5), 0.3)
    long = np.linspace(0, 1, STRENGTHNET_GRID.num_frames(16000 * 3600))  # one hour
    out = align_curve(long, STRENGTHNET_GRID, FBANK_GRID, FBANK_GRID.num_frames(16000 * 3600))
    assert out.shape == (359998,) and abs(out[-1] - 1) < 1e-3
    with pytest.raises(ValueError, match="empty curve"):
        align_curve([], STRENGTHNET_GRID, FBANK_GRID, 3)
    with pytest.raises(ValueError, match="NaN"):
        align_curve([0.1, np.nan], STRENGTHNET_GRID, FBANK_GRID, 3)
