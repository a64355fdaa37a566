"""StrengthNet, ranker targets, energy proxy, and the resumable intensity cache."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s3prl_emoaware.config import load_config, shipped_config
from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.features import num_frames
from s3prl_emoaware.intensity.acoustic import energy_intensity, utterance_statistics
from s3prl_emoaware.intensity.cache import IntensityCache, MissingIntensityError
from s3prl_emoaware.intensity.extract import extract_intensities
from s3prl_emoaware.intensity.ranker import RelativeAttributeRanker
from s3prl_emoaware.intensity.strengthnet import MelFrontend, StrengthNetConfig, strengthnet
from s3prl_emoaware.intensity.train import StrengthNetRecipe, load_strengthnet, train_strengthnet
from s3prl_emoaware.utils.audio import read_audio


def test_strengthnet_shapes_sizes_and_padding():
    model = strengthnet()
    assert 1.8e6 < sum(p.numel() for p in model.parameters()) < 2.0e6  # "about 1.9M parameters"
    assert model.encoding_dim == 512  # 128 channels x 4 bins after four stride-3 stages
    mels = MelFrontend()(torch.randn(2, 48000))
    assert mels.shape == (2, 188, 80)  # 62.5 frames/s, time never downsampled
    model.eval()
    frame, utt, logits = model(mels, torch.tensor([188, 90]))
    assert frame.shape == (2, 188) and utt.shape == (2,) and logits.shape == (2, 4)
    assert torch.all(frame[1, 90:] == 0) and torch.all((frame >= 0) & (frame <= 1))
    assert torch.allclose(utt[1], frame[1, :90].mean())
    # padding does not change a clip's scores
    alone, _, _ = model(mels[1:, :90], torch.tensor([90]))
    assert torch.allclose(alone[0], frame[1, :90], atol=1e-5)
    with pytest.raises(ValueError, match="too small"):
        StrengthNetConfig(dense_dim=8, channels=[2, 2, 2])


def test_mean_pooled_emotion_logits_ignore_padding_and_see_every_frame():
    torch.manual_seed(0)
    model = strengthnet(
        StrengthNetConfig(dense_dim=27, channels=[2, 4], lstm_dim=8, hidden_dim=8, emotion_pooling="mean")
    ).eval()
    mels = torch.randn(2, 60, 80)
    _, _, logits = model(mels, torch.tensor([60, 35]))
    _, _, alone = model(mels[1:, :35], torch.tensor([35]))
    assert torch.allclose(alone[0], logits[1], atol=1e-5)
    # a change in the middle of the clip moves the logits (the final states of ``last`` barely
    # see the middle of a long clip; the mean reads every frame)
    changed = mels[1:, :35].clone()
    changed[0, 15:20] += 3.0
    _, _, moved = model(changed, torch.tensor([35]))
    assert not torch.allclose(moved, alone, atol=1e-4)
    with pytest.raises(ValueError, match="emotion_pooling"):
        StrengthNetConfig(emotion_pooling="max")


def test_ranker_orders_emotional_above_neutral_per_speaker():
    rng = np.random.default_rng(0)
    stats, emotions, speakers = [], [], []
    for spk in range(4):
        base = rng.normal(size=5)
        for e, shift in (("neu", 0.0), ("ang", 2.0)):
            for _ in range(6):
                x = base + rng.normal(scale=0.3, size=5)
                x[0] += shift * rng.uniform(0.5, 1.0)  # anger raises feature 0
                stats.append(x), emotions.append(e), speakers.append(f"s{spk}")
    ranker = RelativeAttributeRanker().fit(np.array(stats), emotions, speakers)
    strength = ranker.strength(np.array(stats), ["ang"] * len(stats))
    emo = np.array(emotions) == "ang"
    assert strength[emo].mean() > strength[~emo].mean() + 0.4
    assert np.all((strength >= 0) & (strength <= 1))
    assert np.all(ranker.strength(np.array(stats), emotions)[~emo] == 0)  # neutral utterances: strength 0


def test_energy_proxy_on_fbank_grid(tiny_iemocap):
    u = next(u for u in read_corpus(tiny_iemocap) if u.emotion == "ang")
    wav = read_audio(u.path)
    curve = energy_intensity(wav)
    assert curve.shape == (num_frames(len(wav), 400, 160),)
    assert curve.min() == 0 and curve.max() == pytest.approx(1)
    # leading silence (0.15 s) has low arousal
    assert curve[:8].mean() < curve.mean()
    assert utterance_statistics(wav).shape == (10,)


@pytest.fixture(scope="module")
def tiny_strengthnet(tiny_iemocap, tmp_path_factory):
    out = tmp_path_factory.mktemp("sn")
    recipe = load_config(StrengthNetRecipe, shipped_config("upstream_configs", "strengthnet_tiny"))
    metrics = train_strengthnet(tiny_iemocap, out, recipe)
    return out, metrics


def test_training_writes_safe_checkpoint_and_metrics(tiny_strengthnet):
    out, metrics = tiny_strengthnet
    ckpt = torch.load(out / "strengthnet.ckpt", map_location="cpu", weights_only=True)
    assert set(ckpt) >= {"model", "config", "epoch", "val_loss"}
    assert load_strengthnet(out / "strengthnet.ckpt").config.channels == [2, 4]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_val"] > 0 and set(saved["val_speakers"]).isdisjoint(ckpt["train_speakers"])
    assert (out / "ranker.json").is_file() and list(out.glob("events.out.tfevents.*"))


def test_incompatible_checkpoint_is_named(tmp_path):
    bad = tmp_path / "bad.ckpt"
    torch.save({"model": {}, "config": {"n_mels": 40}}, bad)
    with pytest.raises(
        Exception,
        match="bad.ckpt: expected checkpoint kind strengthnet with weights matching its config, found missing",
    ):
        load_strengthnet(bad)


def test_killed_extraction_resumes_without_redoing(tiny_iemocap, tiny_strengthnet, tmp_path):
    _, _ = tiny_strengthnet
    cache = tmp_path / "cache"
    model = str(tiny_strengthnet[0] / "strengthnet.ckpt")
    with pytest.raises(KeyboardInterrupt):
        extract_intensities(tiny_iemocap, cache, model_path=model, batch_size=4, stop_after=6)
    first = IntensityCache(cache)
    assert len(first) == 6
    done = {utt: (cache / item["file"]).stat().st_mtime_ns for utt, item in first.items.items()}
    counts = extract_intensities(tiny_iemocap, cache, model_path=model, batch_size=4)
    full = IntensityCache(cache)
    assert counts["new"] == len(read_corpus(tiny_iemocap)) - 6 == len(full) - 6
    assert all((cache / full.items[u]["file"]).stat().st_mtime_ns == t for u, t in done.items())
    for u in read_corpus(tiny_iemocap)[:5]:
        curve = full.get(u.utt_id)
        assert curve.shape == (num_frames(len(read_audio(u.path)), 400, 160),)
        assert curve.dtype == np.float32 and curve.min() >= 0 and curve.max() <= 1
    assert not list(cache.rglob("*.tmp"))


def test_bad_files_are_skipped_and_reported(tiny_iemocap, tmp_path):
    corpus = tmp_path / "iemocap"
    shutil.copytree(tiny_iemocap, corpus)
    bad = sorted(corpus.glob("Session2/sentences/wav/*/*.wav"))[0]
    bad.write_bytes(b"garbage")
    counts = extract_intensities(corpus, tmp_path / "cache", source="energy")
    cache = IntensityCache(tmp_path / "cache")
    assert counts["skipped"] == 1 and bad.stem in cache.failed and "unreadable audio" in cache.failed[bad.stem]
    with pytest.raises(MissingIntensityError, match=f"{bad.stem}.*extraction failed.*s3prl-emoaware intensity"):
        cache.get(bad.stem)
    with pytest.raises(MissingIntensityError, match="missing index.json"):
        IntensityCache(tmp_path / "nowhere")


def test_retrained_strengthnet_replaces_the_pipelines_cache(tiny_iemocap, tiny_strengthnet, tmp_path):
    import shutil

    from s3prl_emoaware.intensity.cache import discard_other_checkpoint_cache

    cache, model = tmp_path / "cache", tmp_path / "strengthnet.ckpt"
    shutil.copy(tiny_strengthnet[0] / "strengthnet.ckpt", model)
    with pytest.raises(KeyboardInterrupt):
        extract_intensities(tiny_iemocap, cache, model_path=str(model), batch_size=4, stop_after=3)
    assert not discard_other_checkpoint_cache(cache, model)  # same model: the partial cache resumes
    assert len(IntensityCache(cache)) == 3
    ckpt = torch.load(model, map_location="cpu", weights_only=True)
    ckpt["epoch"] = int(ckpt["epoch"]) + 1  # "retrained": other bytes, other hash
    torch.save(ckpt, model)
    with pytest.raises(Exception, match="refusing to add curves"):
        extract_intensities(tiny_iemocap, cache, model_path=str(model), batch_size=4)
    assert discard_other_checkpoint_cache(cache, model) and not cache.exists()
    counts = extract_intensities(tiny_iemocap, cache, model_path=str(model), batch_size=4)
    assert counts["new"] == len(read_corpus(tiny_iemocap)) == len(IntensityCache(cache))


def test_windowed_frame_targets_follow_the_utterance(tiny_iemocap, tiny_strengthnet, tmp_path):
    from s3prl_emoaware.intensity.ranker import RelativeAttributeRanker
    from s3prl_emoaware.intensity.train import windowed_targets

    out, _ = tiny_strengthnet
    ranker = RelativeAttributeRanker.load(out / "ranker.json")
    utts = read_corpus(tiny_iemocap)
    mixed = next(
        u for u in utts if u.emotional_segment and u.emotional_segment[0] > 0.5 and u.emotion in ranker.weights
    )
    wav = read_audio(mixed.path)
    curve = windowed_targets(ranker, wav, mixed.emotion, 150, 1.0)
    assert curve.shape == (150,) and curve.min() >= 0 and curve.max() <= 1 and curve.std() > 0
    neutral = next(u for u in utts if u.emotion == "neu")
    assert torch.all(windowed_targets(ranker, read_audio(neutral.path), "neu", 40, 1.0) == 0)
    recipe = load_config(
        StrengthNetRecipe,
        shipped_config("upstream_configs", "strengthnet_tiny"),
        ["training.frame_targets=windowed", "training.epochs=1"],
    )
    assert train_strengthnet(tiny_iemocap, tmp_path / "w", recipe)["n_val"] > 0


def test_cached_curve_from_other_audio_is_refused(tiny_iemocap, tmp_path):
    from s3prl_emoaware.intensity.cache import IntensityMismatchError

    utts = read_corpus(tiny_iemocap)
    extract_intensities(tiny_iemocap, tmp_path / "cache", source="energy", utterances=utts[:3])
    cache = IntensityCache(tmp_path / "cache")
    wav = read_audio(utts[0].path)
    assert cache.get(utts[0].utt_id, wav).shape == cache.get(utts[0].utt_id).shape
    other = wav.copy()
    other[100] += 0.01  # same length, same id, other content
    with pytest.raises(IntensityMismatchError, match=f"{utts[0].utt_id}.*other audio"):
        cache.get(utts[0].utt_id, other)
    # resuming into the cache from another corpus with the same ids is refused, not skipped
    corpus = tmp_path / "copy"
    shutil.copytree(tiny_iemocap, corpus)
    with pytest.raises(IntensityMismatchError, match="another corpus"):
        extract_intensities(corpus, tmp_path / "cache", source="energy")


def _item(n, emotional, speech_from, speech_to, value=0.8):
    from s3prl_emoaware.corpora.reader import Utterance
    from s3prl_emoaware.intensity.train import _Item

    speech = torch.zeros(n, dtype=torch.bool)
    speech[speech_from:speech_to] = True
    target = torch.where(speech, torch.tensor(value if emotional else 0.0), torch.tensor(0.0))
    utt = Utterance(f"u{n}{int(emotional)}", Path("unused.wav"), "spk", "ang" if emotional else "neu")
    return _Item(utt, torch.randn(n, 4), speech, target, float(target.mean()), 2 if emotional else 0)


def test_splice_trims_the_junction_and_labels_the_emotional_part():
    from s3prl_emoaware.intensity.train import splice

    neutral = _item(50, False, 5, 40)  # 10 trailing non-speech frames
    angry = _item(60, True, 8, 55)  # 8 leading non-speech frames
    out = splice(neutral, angry, gap_frames=6)
    # neutral up to its speech end + 3 of its 10 trailing frames, then 3 of angry's 8 leading frames onwards
    assert out.mel.shape[0] == 40 + 3 + (60 - 8 + 3)
    assert out.emotional == (43, out.mel.shape[0]) and out.label == 2 and out.utt.emotion == "ang"
    assert torch.all(out.frame_target[:43] == 0) and out.frame_target[43:].max() == pytest.approx(0.8)
    assert out.target == pytest.approx(float(out.frame_target.mean()))
    first = splice(angry, neutral, gap_frames=0)  # no pause kept at all
    assert first.emotional == (0, 55) and first.mel.shape[0] == 55 + 45


def test_splice_trim_db_trims_the_junction_without_a_vad_on_the_targets():
    from s3prl_emoaware.corpora.reader import Utterance
    from s3prl_emoaware.intensity.alignment import STRENGTHNET_GRID
    from s3prl_emoaware.intensity.train import StrengthNetTrainingConfig, _make_item, splice

    sr = STRENGTHNET_GRID.sample_rate
    rng = np.random.default_rng(0)
    tone = lambda seconds: 0.3 * np.sin(np.arange(int(seconds * sr)) * 0.05)  # noqa: E731
    quiet = lambda seconds: 1e-6 * rng.standard_normal(int(seconds * sr))  # noqa: E731
    wav = np.concatenate([quiet(0.5), tone(1.0), quiet(0.5)]).astype(np.float32)  # 0.5 s of silence each side
    n = STRENGTHNET_GRID.num_frames(len(wav))
    lengths = {}
    for trim in (None, 35):
        cfg = StrengthNetTrainingConfig(splice_trim_db=trim)
        neutral = _make_item(Utterance("n", Path("x.wav"), "spk", "neu"), wav, torch.zeros(n, 4), 0.0, 0, cfg, None)
        angry = _make_item(Utterance("a", Path("x.wav"), "spk", "ang"), wav, torch.zeros(n, 4), 0.7, 2, cfg, None)
        assert torch.all(angry.frame_target == 0.7)  # the trim test sets no target (no vad_db)
        lengths[trim] = splice(neutral, angry, gap_frames=10).mel.shape[0]
    assert lengths[None] == 2 * n  # no speech test: the clips meet with their own silences, gap or not
    silence = int(0.5 * sr / STRENGTHNET_GRID.hop)
    assert abs(lengths[35] - (2 * n - 2 * silence + 10)) <= 4  # about 1 s of junction silence trimmed to 10 frames
    with pytest.raises(ValueError, match="splice_trim_db"):
        StrengthNetTrainingConfig(splice_trim_db=0)


def test_vad_scope_edges_zeroes_only_the_silence_around_the_clip():
    from s3prl_emoaware.corpora.reader import Utterance
    from s3prl_emoaware.intensity.alignment import STRENGTHNET_GRID
    from s3prl_emoaware.intensity.train import StrengthNetTrainingConfig, _make_item

    sr, hop = STRENGTHNET_GRID.sample_rate, STRENGTHNET_GRID.hop
    rng = np.random.default_rng(0)
    tone = lambda seconds: 0.3 * np.sin(np.arange(int(seconds * sr)) * 0.05)  # noqa: E731
    quiet = lambda seconds: 1e-6 * rng.standard_normal(int(seconds * sr))  # noqa: E731
    # 0.5 s silence, 0.6 s speech, 0.4 s pause, 0.6 s speech, 0.5 s silence
    wav = np.concatenate([quiet(0.5), tone(0.6), quiet(0.4), tone(0.6), quiet(0.5)]).astype(np.float32)
    n = STRENGTHNET_GRID.num_frames(len(wav))
    utt = Utterance("u", Path("unused.wav"), "spk", "ang")
    frame = lambda seconds: int(seconds * sr / hop)  # noqa: E731
    lead, pause, trail = slice(0, frame(0.45)), slice(frame(1.15), frame(1.45)), slice(frame(2.15) + 2, n)
    speech = slice(frame(0.55), frame(1.05))
    targets = {}
    for scope in ("all", "edges"):
        cfg = StrengthNetTrainingConfig(vad_db=35, vad_scope=scope)
        targets[scope] = _make_item(utt, wav, torch.zeros(n, 4), 0.7, 2, cfg, None).frame_target
    for t in targets.values():
        assert torch.all(t[lead] == 0) and torch.all(t[trail] == 0)
        assert torch.allclose(t[speech], torch.tensor(0.7))
    assert torch.all(targets["all"][pause] == 0)
    assert torch.allclose(targets["edges"][pause], torch.tensor(0.7))  # the pause between words keeps its target
    with pytest.raises(ValueError, match="vad_scope"):
        StrengthNetTrainingConfig(vad_scope="middle")


def test_calibrated_recipe_reports_levels_and_spliced_localisation(tiny_iemocap, tmp_path):
    recipe = load_config(
        StrengthNetRecipe,
        shipped_config("upstream_configs", "strengthnet_tiny"),
        [
            "training.emotional_floor=0.3",
            "training.vad_db=35",
            "training.splice_per_emotional=1",
            "training.utterance_target=frame_mean",
            "training.calibration=minmax",
        ],
    )
    metrics = train_strengthnet(tiny_iemocap, tmp_path / "sn", recipe, eval_corpora=[tiny_iemocap])
    assert metrics["n_spliced"] > 0 and 0 <= metrics["localisation_spliced"] <= 1
    assert set(metrics["mean_intensity_by_emotion"]) >= {"neu"}
    assert "level_difference" in metrics and "auc_emotional_vs_neutral" in metrics
    cross = metrics["cross_corpus"][str(tiny_iemocap)]
    assert cross["n_utterances"] == len([u for u in read_corpus(tiny_iemocap) if u.emotion in recipe.model.emotions])
    with pytest.raises(Exception, match="emotional_floor"):
        load_config(
            StrengthNetRecipe, shipped_config("upstream_configs", "strengthnet_tiny"), ["training.emotional_floor=1.5"]
        )


def test_distribution_tells_a_flat_cache_from_a_calibrated_one(tiny_iemocap, tmp_path):
    from s3prl_emoaware.intensity.alignment import FBANK_GRID
    from s3prl_emoaware.intensity.cache import IntensityCacheWriter
    from s3prl_emoaware.intensity.distribution import intensity_distribution, plot_intensity_histogram

    utts = read_corpus(tiny_iemocap)[:12]
    figures = {}
    for kind in ("flat", "calibrated"):
        writer = IntensityCacheWriter(tmp_path / kind, "energy", FBANK_GRID)
        for u in utts:
            wav = read_audio(u.path)
            n = FBANK_GRID.num_frames(len(wav))
            level = 0.6 if kind == "flat" else (0.1 if (u.emotion or "neu") == "neu" else 0.8)
            writer.add(
                u.utt_id, np.full(n, level, np.float32) + np.linspace(0, 0.01, n, dtype=np.float32), str(u.path), wav
            )
        writer.flush()
        figures[kind] = intensity_distribution(IntensityCache(tmp_path / kind), utts)
    assert figures["flat"]["n_neutral"] + figures["flat"]["n_emotional"] == len(utts)
    assert abs(figures["flat"]["level_difference"]) < 1e-3 and figures["flat"]["utterance_mean_spread"] < 1e-3
    assert figures["calibrated"]["level_difference"] == pytest.approx(0.7, abs=1e-3)
    assert figures["calibrated"]["median_range"] == pytest.approx(0.01, abs=1e-4)
    png = plot_intensity_histogram(IntensityCache(tmp_path / "calibrated"), utts, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_batches_are_redrawn_and_mix_lengths():
    import random

    from s3prl_emoaware.intensity.train import _batches

    # lengths stand for emotions (sad is slow): 8 short, 8 long items
    items = [_item(n, n > 50, 0, n) for n in [20] * 8 + [80] * 8]
    rng = random.Random(0)
    epochs = [[tuple(sorted(b)) for b, *_ in _batches(items, 4, rng)] for _ in range(2)]
    assert epochs[0] != epochs[1]  # re-drawn every epoch
    mixed = [b for b in epochs[0] + epochs[1] if len({items[i].mel.shape[0] for i in b}) > 1]
    assert mixed  # a length sort would keep every batch one length
    evaluation = [list(b) for b, *_ in _batches(items, 4, None)]
    assert evaluation == [list(b) for b, *_ in _batches(items, 4, None)]
    assert all(len({items[i].mel.shape[0] for i in b}) == 1 for b in evaluation)


def test_ranker_file_is_plain_data_and_a_pickle_is_refused(tiny_strengthnet, tmp_path):
    import pickle

    out, _ = tiny_strengthnet
    ranker = RelativeAttributeRanker.load(out / "ranker.json")
    stats = np.random.default_rng(0).normal(size=(3, 10))
    again = RelativeAttributeRanker.load(out / "ranker.json")
    for e in ranker.weights:
        assert np.allclose(ranker.strength(stats, [e] * 3), again.strength(stats, [e] * 3))
    evil = tmp_path / "ranker.json"
    evil.write_bytes(pickle.dumps({"weights": {}}))
    with pytest.raises(Exception, match="ranker.json: not a relative-attributes ranker file"):
        RelativeAttributeRanker.load(evil)
