"""Span masking: counts, valid starts, EMS's choice, fallback, corruption, determinism."""

import numpy as np
import pytest
import torch

from s3prl_emoaware.masking.spans import (MaskingConfig, batch_masks, choose_starts, corrupt, ems_starts,
                                          num_spans, random_starts, spans_to_mask, threshold_starts)


def test_ratio_span_and_valid_starts():
    cfg = MaskingConfig(strategy="random")
    rng = np.random.default_rng(0)
    assert num_spans(200, cfg) == 4 and num_spans(150, cfg) == 3  # Mockingjay: 28 and 21 frames
    for length in (30, 100, 200, 999):
        starts = random_starts(length, cfg, rng)
        assert len(starts) == num_spans(length, cfg) == len(set(starts))
        assert starts.min() >= 0 and starts.max() <= length - cfg.span - 1
        mask = spans_to_mask(starts, length, cfg.span)
        assert mask.sum() <= len(starts) * cfg.span
    assert len(random_starts(5, cfg, rng)) == 0  # shorter than a span: nothing to mask


def test_ems_picks_highest_intensity_frames():
    cfg = MaskingConfig(strategy="ems", mask_ratio=0.15, span=7)
    length = 200
    intensity = np.zeros(length)
    peaks = [20, 60, 110, 150]
    intensity[peaks] = [0.9, 0.8, 0.95, 0.7]
    intensity[195] = 1.0  # the highest, but not a valid start (195 > 200-7-1)
    starts = ems_starts(intensity, length, cfg, np.random.default_rng(0))
    assert list(starts) == peaks


def test_ems_falls_back_to_random_when_too_few_valid_candidates():
    cfg = MaskingConfig(strategy="ems", mask_ratio=0.3, span=7)
    length = 50  # p = 2, valid starts 0..42, candidates = 4 highest frames
    intensity = np.zeros(length)
    intensity[[46, 47, 48, 49]] = 1.0  # all candidates are invalid starts
    a = ems_starts(intensity, length, cfg, np.random.default_rng(3))
    b = random_starts(length, cfg, np.random.default_rng(3))
    assert list(a) == list(b) and len(a) == 2


def test_threshold_variant_and_errors():
    cfg = MaskingConfig(strategy="threshold", threshold=0.5)
    intensity = np.linspace(0, 1, 100)
    starts = threshold_starts(intensity, 100, cfg, np.random.default_rng(0))
    assert len(starts) == 2 and all(intensity[s] > 0.5 for s in starts)
    with pytest.raises(ValueError, match="needs an intensity curve"):
        choose_starts(MaskingConfig(strategy="ems"), 100, np.random.default_rng(0))
    with pytest.raises(ValueError, match="strategy"):
        MaskingConfig(strategy="nope")


def test_batch_masks_are_deterministic_and_inside_lengths():
    cfg = MaskingConfig(strategy="ems")
    lengths = [120, 80]
    curves = [np.random.default_rng(1).random(120), np.random.default_rng(2).random(80)]
    m1, s1 = batch_masks(lengths, 120, cfg, np.random.default_rng(5), curves)
    m2, s2 = batch_masks(lengths, 120, cfg, np.random.default_rng(5), curves)
    assert torch.equal(m1, m2) and all((a == b).all() for a, b in zip(s1, s2))
    assert not m1[1, 80:].any() and m1[0].any()


def test_corruption_is_utterance_wise_80_10_10():
    cfg = MaskingConfig(strategy="random")
    rng = np.random.default_rng(0)
    feats = torch.arange(1, 1 + 100 * 3, dtype=torch.float32).reshape(1, 100, 3)
    counts = {"zero": 0, "replaced": 0, "kept": 0}
    for _ in range(1000):
        mask, _ = batch_masks([100], 100, cfg, rng)
        out = corrupt(feats, [100], mask, cfg, rng)
        assert torch.equal(out[0, ~mask[0]], feats[0, ~mask[0]])  # unmasked frames never change
        masked = out[0, mask[0]]
        if torch.all(masked == 0):
            counts["zero"] += 1
        elif torch.equal(masked, feats[0, mask[0]]):
            counts["kept"] += 1
        else:
            counts["replaced"] += 1
    assert 740 < counts["zero"] < 860 and 60 < counts["replaced"] < 140 and 60 < counts["kept"] < 140
