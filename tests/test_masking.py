"""Span masking: counts, valid starts, EMS's choice, fallback, corruption, determinism."""

import numpy as np
import pytest
import torch

from s3prl_emoaware.masking.spans import (
    MaskCoverage,
    MaskingConfig,
    batch_masks,
    choose_starts,
    corrupt,
    ems_starts,
    ems_topk_starts,
    ems_weighted_starts,
    mask_statistics,
    num_spans,
    random_budget,
    random_starts,
    spans_to_mask,
    speech_frames,
    threshold_starts,
)


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


def test_ems_topk_picks_highest_intensity_frames():
    cfg = MaskingConfig(strategy="ems_topk", mask_ratio=0.15, span=7)
    length = 200
    intensity = np.zeros(length)
    peaks = [20, 60, 110, 150]
    intensity[peaks] = [0.9, 0.8, 0.95, 0.7]
    intensity[195] = 1.0  # the highest, but not a valid start (195 > 200-7-1)
    starts = ems_topk_starts(intensity, length, cfg, np.random.default_rng(0))
    assert list(starts) == peaks


def test_ems_topk_falls_back_to_random_when_too_few_valid_candidates():
    cfg = MaskingConfig(strategy="ems_topk", mask_ratio=0.3, span=7)
    length = 50  # p = 2, valid starts 0..42, candidates = 4 highest frames
    intensity = np.zeros(length)
    intensity[[46, 47, 48, 49]] = 1.0  # all candidates are invalid starts
    a = ems_topk_starts(intensity, length, cfg, np.random.default_rng(3))
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


def _reference_topk(intensity, length, cfg, rng):
    # the authors' rule written out independently: top-2p frames in descending order, the first
    # p of them that are valid starts, else Mockingjay's random rule
    p = int(round(length * cfg.mask_ratio / cfg.span))
    ranked = sorted(range(length), key=lambda t: (-intensity[t], t))[: 2 * p]
    valid = [t for t in ranked if t <= length - cfg.span - 1][:p]
    return sorted(valid) if len(valid) == p else list(random_starts(length, cfg, rng))


def test_ems_topk_reproduces_the_authors_rule_on_random_curves():
    cfg = MaskingConfig(strategy="ems_topk")
    gen = np.random.default_rng(11)
    for _ in range(200):
        length = int(gen.integers(10, 400))
        curve = np.round(gen.random(length), 2)  # ties included
        assert list(ems_topk_starts(curve, length, cfg, np.random.default_rng(1))) == _reference_topk(
            curve, length, cfg, np.random.default_rng(1)
        )


def _curves(kind, n=300, seed=0):
    gen = np.random.default_rng(seed)
    for _ in range(n):
        length = int(gen.integers(60, 700))
        t = np.arange(length)
        if kind == "peak":
            yield length, np.exp(-0.5 * ((t - 0.6 * length) / (0.07 * length)) ** 2)
        else:  # plateau: an emotional segment in the second half
            yield length, ((t > 0.5 * length) & (t < 0.8 * length)).astype(float)


@pytest.mark.parametrize("kind", ["peak", "plateau"])
@pytest.mark.parametrize("ratio", [0.15, 0.4])
def test_default_ems_spends_random_maskings_budget_on_the_intense_frames(kind, ratio):
    ems, rand = MaskingConfig(mask_ratio=ratio), MaskingConfig(strategy="random", mask_ratio=ratio)
    assert ems.strategy == "ems"  # the default
    rng = np.random.default_rng(0)
    e_masks, r_masks, curves = [], [], []
    for length, curve in _curves(kind):
        e_masks.append(spans_to_mask(choose_starts(ems, length, rng, curve), length, ems.span))
        r_masks.append(spans_to_mask(choose_starts(rand, length, rng, curve), length, rand.span))
        curves.append(curve)
    e, r = mask_statistics(e_masks, curves), mask_statistics(r_masks, curves)
    assert abs(e["masked_fraction"] - r["masked_fraction"]) < 0.01
    assert r["top_quartile_share"] < 0.35 and e["top_quartile_share"] > r["top_quartile_share"] + 0.15
    # the topk rule, by contrast, masks far less than its ratio on a smooth peak
    if kind == "peak":
        k_masks = [spans_to_mask(ems_topk_starts(c, len(c), ems, rng), len(c), ems.span) for c in curves]
        assert mask_statistics(k_masks)["masked_fraction"] < 0.5 * r["masked_fraction"]


def test_random_budget_matches_simulated_random_masking():
    cfg = MaskingConfig(strategy="random")
    rng = np.random.default_rng(2)
    for length in (20, 120, 500):
        simulated = np.mean([spans_to_mask(random_starts(length, cfg, rng), length, 7).sum() for _ in range(3000)])
        assert abs(random_budget(length, cfg) - simulated) < 0.02 * length + 0.3


def test_sharpness_limits_are_random_and_topk_spans():
    length = 300
    curve = np.zeros(length)
    curve[100:170] = 1.0
    sharp = MaskingConfig(sharpness=200.0, speech_only=False, mask_ratio=0.05)  # 2 spans
    for seed in range(20):
        mask = spans_to_mask(ems_starts(curve, length, sharp, np.random.default_rng(seed)), length, 7)
        assert mask.sum() in (7, 14)  # one or two spans (budget ~1.98 spans, stochastically rounded)
        assert mask[100:170].sum() == mask.sum()  # the top-scoring spans: all on the segment
    flat = MaskingConfig(sharpness=0.0, speech_only=False)
    hits = np.mean(
        [
            spans_to_mask(ems_starts(curve, length, flat, np.random.default_rng(s)), length, 7)[100:170].sum()
            for s in range(300)
        ]
    )
    assert 7 < hits < 13  # uniform: the segment (23 % of the frames) gets about its share of ~42 frames


def test_ems_weighted_is_the_random_rule_at_sharpness_0_and_concentrates_with_it():
    length, span = 300, 7
    curve = np.zeros(length)
    curve[100:170] = 1.0  # 23 % of the frames
    flat = MaskingConfig(strategy="ems_weighted", sharpness=0.0)
    rand = MaskingConfig(strategy="random")
    p = num_spans(length, flat)
    weighted = [ems_weighted_starts(curve, length, flat, np.random.default_rng(s)) for s in range(400)]
    assert all(len(a) == p == len(set(a)) for a in weighted)  # Mockingjay's p distinct starts
    # sharpness 0: random masking's distribution (masked frames, share on the segment)
    masked = np.mean([spans_to_mask(a, length, span).sum() for a in weighted])
    assert masked == pytest.approx(random_budget(length, rand), rel=0.03)
    on_seg = np.mean([spans_to_mask(a, length, span)[100:170].sum() for a in weighted]) / masked
    assert 0.19 < on_seg < 0.28
    # guided: starts on the segment, spans overlapping there, so fewer frames masked
    sharp = MaskingConfig(strategy="ems_weighted", sharpness=8.0)
    guided = [
        spans_to_mask(choose_starts(sharp, length, np.random.default_rng(s), curve), length, span) for s in range(200)
    ]
    assert np.mean([m[100:170].sum() / m.sum() for m in guided]) > 0.8
    assert np.mean([m.sum() for m in guided]) < masked
    again = ems_weighted_starts(curve, length, sharp, np.random.default_rng(5))
    assert np.array_equal(again, ems_weighted_starts(curve, length, sharp, np.random.default_rng(5)))


@pytest.mark.parametrize("kind", ["peak", "plateau"])
def test_ems_weighted_fill_budget_makes_up_what_the_overlaps_cost(kind):
    rand = MaskingConfig(strategy="random")
    rng = np.random.default_rng(3)
    curves = list(_curves(kind, n=200))
    r_masks = [spans_to_mask(random_starts(n, rand, rng), n, 7) for n, _ in curves]
    r = mask_statistics(r_masks, [c for _, c in curves])
    for sharpness in (0.0, 4.0, 8.0):
        plain = MaskingConfig(strategy="ems_weighted", sharpness=sharpness)
        filled = MaskingConfig(strategy="ems_weighted", sharpness=sharpness, fill_budget=True)
        p_masks, f_masks = [], []
        for i, (n, c) in enumerate(curves):
            a = ems_weighted_starts(c, n, plain, np.random.default_rng(i))
            b = ems_weighted_starts(c, n, filled, np.random.default_rng(i))
            assert set(a) <= set(b)  # the same draw, spans added after Mockingjay's p
            p_masks.append(spans_to_mask(a, n, 7))
            f_masks.append(spans_to_mask(b, n, 7))
        f = mask_statistics(f_masks, [c for _, c in curves])
        assert abs(f["masked_fraction"] - r["masked_fraction"]) < 0.01, (sharpness, f, r)
        if sharpness == 8.0:
            assert f["top_quartile_share"] > r["top_quartile_share"] + 0.3  # still where the intensity is
            if kind == "peak":  # without the fill, the concentrated spans overlap and mask less
                assert mask_statistics(p_masks)["masked_fraction"] < r["masked_fraction"] - 0.02


def test_ems_spans_do_not_overlap_and_avoid_pauses():
    length = 400
    energy = np.full(length, -5.0)
    energy[50:350] = 1.0  # speech between two pauses
    speech = speech_frames(energy)
    assert not speech[:50].any() and speech[50:350].all()
    curve = np.full(length, 0.5)
    curve[:50] = 1.0  # the most "intense" frames are in the pause: they must not attract masks
    cfg = MaskingConfig(mask_ratio=0.3, speech_only=True)
    for seed in range(20):
        starts = ems_starts(curve, length, cfg, np.random.default_rng(seed), speech)
        assert np.all(np.diff(starts) >= cfg.span)  # disjoint
        mask = spans_to_mask(starts, length, cfg.span)
        assert mask[50:350].sum() >= 0.9 * mask.sum()
    assert speech_frames(np.zeros(30)).all()  # no dynamic range: nothing to call a pause


def test_ems_masks_differ_between_steps_and_repeat_with_the_step_seed():
    length, curve = next(_curves("plateau"))
    cfg = MaskingConfig()
    draws = [tuple(ems_starts(curve, length, cfg, np.random.default_rng([0, step, 0]))) for step in range(10)]
    assert len(set(draws)) > 5
    assert draws[3] == tuple(ems_starts(curve, length, cfg, np.random.default_rng([0, 3, 0])))


def test_mask_coverage_accumulates_over_steps():
    cov = MaskCoverage()
    m = torch.zeros(1, 10, dtype=torch.bool)
    m[0, :3] = True
    cov.update(["a"], m, [10])
    assert cov.value == pytest.approx(0.3)
    m2 = torch.zeros(1, 10, dtype=torch.bool)
    m2[0, 2:6] = True
    cov.update(["a"], m2, [10])
    assert cov.value == pytest.approx(0.6)
    with pytest.raises(ValueError, match="sharpness"):
        MaskingConfig(sharpness=-1)


def test_the_command_lines_offer_every_masking_strategy():
    import argparse

    from s3prl_emoaware.cli import plot_intensity, pretrain
    from s3prl_emoaware.masking.spans import STRATEGIES

    for module in (pretrain, plot_intensity):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        (action,) = [a for a in parser._actions if "--masking" in a.option_strings or "--strategy" in a.option_strings]
        assert sorted(action.choices) == sorted(STRATEGIES), module.__name__


def _batch_of_curves():
    """A neutral utterance (flat 0.05), an emotional one (0.8), a mixed one (0 then 1), another neutral."""
    lengths = [300, 250, 400, 200]
    curves = [np.full(300, 0.05), np.full(250, 0.8), np.r_[np.zeros(200), np.ones(200)], np.full(200, 0.05)]
    return lengths, curves


def test_batch_budget_scope_moves_masks_between_utterances_at_random_maskings_budget():
    lengths, curves = _batch_of_curves()
    per_utt = {scope: np.zeros(4) for scope in ("utterance", "batch", "random")}
    for step in range(200):
        for scope in per_utt:
            cfg = (
                MaskingConfig(strategy="random")
                if scope == "random"
                else MaskingConfig(budget_scope=scope, max_share=0.3)
            )
            mask, starts = batch_masks(lengths, 400, cfg, np.random.default_rng(step), curves)
            for i, n in enumerate(lengths):
                assert not mask[i, n:].any()
                assert len(np.unique(starts[i])) == len(starts[i])
                if scope == "batch":  # disjoint spans, at most max_share of the utterance (or its own budget)
                    assert mask[i, :n].sum() == len(starts[i]) * cfg.span
                    assert mask[i, :n].sum() <= max(0.3 * n, random_budget(n, cfg) + cfg.span)
            per_utt[scope] += [mask[i, :n].float().mean().item() / 200 for i, n in enumerate(lengths)]
    total = {s: float(np.dot(v, lengths) / sum(lengths)) for s, v in per_utt.items()}
    assert abs(total["batch"] - total["random"]) < 0.01 and abs(total["utterance"] - total["random"]) < 0.01
    # per utterance: each keeps its own budget; shared by the batch: the neutral utterances give theirs away
    assert np.all(np.abs(per_utt["utterance"] - per_utt["random"]) < 0.01)
    assert per_utt["batch"][0] < 0.02 and per_utt["batch"][3] < 0.02
    assert per_utt["batch"][1] > per_utt["random"][1] + 0.05 and per_utt["batch"][2] > per_utt["random"][2] + 0.05


def test_batch_budget_scope_is_the_random_share_at_sharpness_0_and_repeats_with_the_step_seed():
    lengths, curves = _batch_of_curves()
    flat = MaskingConfig(budget_scope="batch", sharpness=0.0)
    share = np.zeros(4)
    for step in range(300):
        mask, _ = batch_masks(lengths, 400, flat, np.random.default_rng(step), curves)
        share += [mask[i, :n].float().mean().item() / 300 for i, n in enumerate(lengths)]
    assert np.all(np.abs(share - 0.14) < 0.02)  # every utterance about random masking's share
    cfg = MaskingConfig(budget_scope="batch")
    a, _ = batch_masks(lengths, 400, cfg, np.random.default_rng(7), curves)
    b, _ = batch_masks(lengths, 400, cfg, np.random.default_rng(7), curves)
    c, _ = batch_masks(lengths, 400, cfg, np.random.default_rng(8), curves)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="budget_scope"):
        MaskingConfig(budget_scope="corpus")
    with pytest.raises(ValueError, match="max_share"):
        MaskingConfig(budget_scope="batch", max_share=0.0)
    with pytest.raises(ValueError, match="frames for an utterance"):
        batch_masks([300], 300, cfg, np.random.default_rng(0), [np.zeros(100)])
