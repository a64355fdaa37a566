"""The fast intensity extraction path (issue 14): same curves as the training forward, same cache."""

import json
import shutil

import numpy as np
import pytest
import torch

from s3prl_emoaware.config import to_dict
from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.intensity.cache import IntensityCache, IntensityCacheWriter, audio_hash
from s3prl_emoaware.intensity.extract import extract_intensities
from s3prl_emoaware.intensity.strengthnet import StrengthNet, StrengthNetConfig
from s3prl_emoaware.utils.audio import read_audio

_SMALL = dict(dense_dim=27, channels=[4, 8], lstm_dim=8, hidden_dim=8)


@pytest.mark.parametrize("channels_last", [False, True])
def test_frame_strength_equals_forward_and_ignores_padding(channels_last):
    torch.manual_seed(0)
    model = StrengthNet(StrengthNetConfig(**_SMALL)).eval()
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    mels = torch.randn(4, 60, 80) * 3 - 5
    lengths = torch.tensor([60, 41, 7, 0])
    with torch.no_grad():
        reference, _, _ = model(mels, lengths)
    fast = model.frame_strength(mels, lengths)
    assert fast.shape == (4, 60) and reference[:3].std() > 0.01  # not a constant output
    assert torch.allclose(fast, reference, atol=1e-5)
    assert torch.all(fast[1, 41:] == 0) and torch.all(fast[3] == 0)
    # a clip's curve does not depend on the padding its batch gives it
    alone = model.frame_strength(mels[1:2, :41], torch.tensor([41]))
    assert torch.allclose(alone[0], fast[1, :41], atol=1e-5)
    model.train()
    with pytest.raises(ValueError, match="inference"):
        model.frame_strength(mels, lengths)


@pytest.fixture()
def random_strengthnet(tmp_path):
    torch.manual_seed(1)
    config = StrengthNetConfig(**_SMALL)
    model = StrengthNet(config)
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    path = tmp_path / "sn.ckpt"
    torch.save({"model": model.state_dict(), "config": to_dict(config)}, path)
    return str(path)


def test_fast_extraction_writes_the_reference_curves_and_audio_hashes(tiny_iemocap, random_strengthnet, tmp_path):
    utts = read_corpus(tiny_iemocap)
    lengths = {len(read_audio(u.path)) for u in utts}
    assert len(lengths) > 5  # clips of different lengths, so the batches are padded
    extract_intensities(tiny_iemocap, tmp_path / "ref", model_path=random_strengthnet, batch_size=1, reference=True)
    extract_intensities(tiny_iemocap, tmp_path / "fast", model_path=random_strengthnet, batch_size=5, threads=1)
    ref, fast = IntensityCache(tmp_path / "ref"), IntensityCache(tmp_path / "fast")
    assert set(fast.items) == set(ref.items) == {u.utt_id for u in utts}
    assert max(np.ptp(ref.get(u.utt_id)) for u in utts) > 0.01
    for u in utts:
        wav = read_audio(u.path)
        np.testing.assert_allclose(fast.get(u.utt_id, wav), ref.get(u.utt_id), atol=1e-5)
        assert fast.items[u.utt_id]["audio_hash"] == audio_hash(wav) == ref.items[u.utt_id]["audio_hash"]


def test_fast_extraction_skips_and_reports_a_bad_file(tiny_iemocap, random_strengthnet, tmp_path):
    corpus = tmp_path / "iemocap"
    shutil.copytree(tiny_iemocap, corpus)
    bad = sorted(corpus.glob("Session1/sentences/wav/*/*.wav"))[2]
    bad.write_bytes(b"RIFF garbage")
    counts = extract_intensities(corpus, tmp_path / "cache", model_path=random_strengthnet, batch_size=4)
    cache = IntensityCache(tmp_path / "cache")
    assert counts["skipped"] == 1 and counts["new"] == len(read_corpus(corpus)) - 1
    assert bad.stem in cache.failed and str(bad.name) in cache.failed[bad.stem] and bad.stem not in cache


def test_batches_are_length_sorted_and_within_the_frame_budget(tiny_iemocap, monkeypatch):
    from s3prl_emoaware.intensity import extract
    from s3prl_emoaware.intensity.alignment import STRENGTHNET_GRID

    monkeypatch.setattr(extract, "FRAME_BUDGET", 600)
    utts = read_corpus(tiny_iemocap)
    batches = list(extract._batches(utts, 8))
    frames = [[STRENGTHNET_GRID.num_frames(len(read_audio(u.path))) for u in b] for b in batches]
    flat = [n for b in frames for n in b]
    assert flat == sorted(flat) and len(flat) == len(utts)
    assert all(len(b) <= 8 and (len(b) == 1 or len(b) * max(b) <= 600) for b in frames)


def test_index_is_rewritten_by_count_and_time(tmp_path):
    from s3prl_emoaware.intensity.alignment import FBANK_GRID

    writer = IntensityCacheWriter(tmp_path, "energy", FBANK_GRID, flush_every=2, flush_seconds=3600)
    for i in range(5):
        writer.add(f"u{i}", np.zeros(3, np.float32), f"u{i}.wav", np.zeros(400, np.float32))
    assert not (tmp_path / "index.json").exists()  # 5 new entries, but not an hour yet
    writer.flush_seconds = 0
    writer.add("u5", np.zeros(3, np.float32), "u5.wav", np.zeros(400, np.float32))
    assert len(json.loads((tmp_path / "index.json").read_text())["items"]) == 6


def test_unpacked_bilstm_equals_packed_run_with_gradients():
    """StrengthNet trains without packed sequences (their CPU backward zero-fills a full gradient per
    step); outputs at valid frames, final states and gradients must equal a packed run's."""
    from torch import nn

    from s3prl_emoaware.models.strengthnet import _bidirectional

    torch.manual_seed(0)
    lstm = nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    x = torch.randn(4, 9, 6, requires_grad=True)
    lengths = torch.tensor([9, 5, 1, 7])
    valid = torch.arange(9)[None, :] < lengths[:, None]
    weights = torch.randn(4, 9, 10)  # a loss that reads every valid output differently

    out, last = _bidirectional(lstm, x, lengths)
    (out * weights * valid[..., None]).sum().add(last.pow(2).sum()).backward()
    ours = [x.grad.clone()] + [p.grad.clone() for p in lstm.parameters()]
    x.grad = None
    lstm.zero_grad()

    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref, (h, _) = lstm(packed)
    ref, _ = nn.utils.rnn.pad_packed_sequence(ref, batch_first=True, total_length=9)
    ref_last = torch.cat([h[-2], h[-1]], dim=-1)
    (ref * weights * valid[..., None]).sum().add(ref_last.pow(2).sum()).backward()
    theirs = [x.grad] + [p.grad for p in lstm.parameters()]

    assert torch.allclose(out[valid], ref[valid], atol=1e-6)
    assert torch.allclose(last, ref_last, atol=1e-6)
    assert ref_last.std() > 0.01
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conv_relu_is_right_where_onednn_is_not(dtype):
    """Each convolution + ReLU of the fast path against float64, on every shape a StrengthNet stage can give,
    including a stride-3 convolution with a one-column output (strengthnet_small's last one, 3 -> 1 bins), for
    which oneDNN in torch 2.11 returns 1e19 or inf in bf16 (and fused in fp32 with one input channel)."""
    from s3prl_emoaware.models.strengthnet import _conv_relu

    torch.manual_seed(0)
    for channels in (1, 8, 32):
        for width in (1, 2, 3, 4, 10):
            for stride in ((1, 1), (1, 3)):
                conv = torch.nn.Conv2d(channels, channels, 3, stride=stride, padding=1)
                conv.to(memory_format=torch.channels_last)
                x = torch.randn(3, channels, 50, width).relu().to(dtype).contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    got = _conv_relu(conv, x)
                    conv64 = torch.nn.functional.conv2d
                    want = conv64(x.double(), conv.weight.double(), conv.bias.double(), stride, 1).relu()
                assert got.dtype == dtype and got.shape == want.shape
                tolerance = 1e-4 if dtype == torch.float32 else 0.05 * float(want.abs().max()) + 1e-2
                error = float((got.double() - want).abs().max())
                assert error <= tolerance, (channels, width, stride, error)


def test_bf16_frame_strength_is_close_to_fp32_and_finite():
    """strengthnet_small's shape (its last convolution is the one oneDNN gets wrong in bf16), padded batch."""
    torch.manual_seed(0)
    model = StrengthNet(StrengthNetConfig(dense_dim=81, channels=[8, 16, 32, 32], lstm_dim=16, hidden_dim=16)).eval()
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    model.to(memory_format=torch.channels_last)
    mels = torch.randn(5, 90, 80) * 3 - 5
    lengths = torch.tensor([90, 88, 70, 45, 12])
    fp32 = model.frame_strength(mels, lengths)
    bf16 = model.frame_strength(mels, lengths, precision="bf16")
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert float(fp32.std()) > 0.01  # not a constant output
    assert float((bf16 - fp32).abs().max()) < 0.02
    assert torch.all(bf16[4, 12:] == 0)
    with pytest.raises(ValueError, match="precision"):
        model.frame_strength(mels, lengths, precision="fp16")


def test_bf16_curves_are_recorded_as_such_and_never_mixed_with_fp32(tiny_iemocap, random_strengthnet, tmp_path):
    from s3prl_emoaware.utils.errors import UserFacingError

    utts = read_corpus(tiny_iemocap)[:6]
    extract_intensities(
        tiny_iemocap, tmp_path / "bf16", model_path=random_strengthnet, utterances=utts, precision="bf16"
    )
    extract_intensities(tiny_iemocap, tmp_path / "fp32", model_path=random_strengthnet, utterances=utts)
    bf16, fp32 = IntensityCache(tmp_path / "bf16"), IntensityCache(tmp_path / "fp32")
    index = json.loads((tmp_path / "bf16" / "index.json").read_text())
    assert index["model"]["precision"] == "bf16"
    assert "precision" not in json.loads((tmp_path / "fp32" / "index.json").read_text())["model"]
    for u in utts:
        np.testing.assert_allclose(bf16.get(u.utt_id), fp32.get(u.utt_id), atol=0.02)
    with pytest.raises(UserFacingError, match="refusing to add"):
        extract_intensities(tiny_iemocap, tmp_path / "fp32", model_path=random_strengthnet, precision="bf16")
    with pytest.raises(UserFacingError, match="precision"):
        extract_intensities(tiny_iemocap, tmp_path / "energy", source="energy", precision="bf16")


def test_a_failing_cache_write_stops_the_extraction_and_keeps_what_was_written(
    tiny_iemocap, random_strengthnet, tmp_path, monkeypatch
):
    """The writes run in a thread of their own: its error must still stop the run, and the curves written
    before it stay in the index."""
    calls = []
    add = IntensityCacheWriter.add

    def failing_add(self, utt_id, *args):
        calls.append(utt_id)
        if len(calls) == 7:
            raise OSError(f"cannot write {utt_id}")
        add(self, utt_id, *args)

    monkeypatch.setattr(IntensityCacheWriter, "add", failing_add)
    with pytest.raises(OSError, match="cannot write"):
        extract_intensities(tiny_iemocap, tmp_path / "cache", model_path=random_strengthnet, batch_size=3)
    cache = IntensityCache(tmp_path / "cache")
    assert len(cache.items) >= 6 and calls[6] not in cache.items  # the batch being computed may land too
    assert all(np.isfinite(cache.get(utt_id)).all() for utt_id in cache.items)
    monkeypatch.setattr(IntensityCacheWriter, "add", add)
    counts = extract_intensities(tiny_iemocap, tmp_path / "cache", model_path=random_strengthnet, batch_size=3)
    assert counts["new"] == len(read_corpus(tiny_iemocap)) - len(cache.items) and counts["total"] == counts[
        "new"
    ] + len(cache.items)


def test_batches_are_padded_to_a_multiple_of_16_frames_without_changing_a_curve(monkeypatch):
    from s3prl_emoaware.intensity import extract

    torch.manual_seed(0)
    model = StrengthNet(StrengthNetConfig(**_SMALL)).eval()
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    mels = [torch.randn(n, 80) * 3 - 5 for n in (37, 50, 21)]
    shapes = []
    frame_strength = model.frame_strength
    monkeypatch.setattr(model, "frame_strength", lambda m, n, p: shapes.append(m.shape) or frame_strength(m, n, p))
    curves = extract._strengthnet_curves(model, mels, reference=False, precision="fp32")
    assert shapes == [(3, 64, 80)]
    for mel, curve in zip(mels, curves):
        alone = frame_strength(mel[None], torch.tensor([mel.shape[0]]))[0].numpy()
        assert curve.shape == (mel.shape[0],)
        np.testing.assert_allclose(curve, alone, atol=1e-5)


def test_mels_of_a_batch_are_the_mels_of_each_clip():
    from s3prl_emoaware.features.mel import MelFrontend

    torch.manual_seed(0)
    frontend = MelFrontend(80, log=True)
    wavs = [torch.randn(n) for n in (16000, 45677, 400, 257 * 3 + 5, 48000)]
    batch = frontend.each(wavs)
    assert frontend.each([]) == []
    for wav, mel in zip(wavs, batch):
        alone = frontend(wav[None])[0]
        assert mel.shape == alone.shape == (1 + len(wav) // 256, 80)
        torch.testing.assert_close(mel, alone, rtol=0, atol=1e-5)


def test_frame_strength_without_the_fused_op_gives_the_same_curves(monkeypatch):
    """The path for builds without oneDNN and for CUDA (plain convolution, then an in-place ReLU)."""
    from s3prl_emoaware.models import strengthnet as module

    torch.manual_seed(0)
    model = StrengthNet(StrengthNetConfig(dense_dim=81, channels=[8, 16, 32, 32], lstm_dim=16, hidden_dim=16)).eval()
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    mels, lengths = torch.randn(3, 40, 80) * 3 - 5, torch.tensor([40, 33, 9])
    fused = {p: model.frame_strength(mels, lengths, p) for p in ("fp32", "bf16")}
    monkeypatch.setattr(module, "_POINTWISE", None)
    for precision, curves in fused.items():
        plain = model.frame_strength(mels, lengths, precision)
        torch.testing.assert_close(plain, curves, rtol=0, atol=1e-5 if precision == "fp32" else 2e-2)


def test_bf16_on_a_cpu_without_onednn_bf16_uses_torch_kernels(monkeypatch, caplog):
    """oneDNN refuses bf16 on CPUs without AVX512 (the fused op raises there): torch's own kernels run it."""
    from s3prl_emoaware.intensity.extract import _warn_if_emulated
    from s3prl_emoaware.models import strengthnet as module

    torch.manual_seed(0)
    model = StrengthNet(StrengthNetConfig(**_SMALL)).eval()
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    mels, lengths = torch.randn(2, 30, 80) * 3 - 5, torch.tensor([30, 17])
    expected = model.frame_strength(mels, lengths, "bf16")

    def refuse(*args):
        raise RuntimeError("bf16 path needs the cpu support avx512bw, avx512vl and avx512dq")

    monkeypatch.setattr(module, "onednn_bf16_supported", lambda: False)
    monkeypatch.setattr(module, "_POINTWISE", refuse)
    got = model.frame_strength(mels, lengths, "bf16")
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-2)
    _warn_if_emulated("bf16")
    assert "emulated and slower than fp32" in caplog.text
