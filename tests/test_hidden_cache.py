"""The hidden-state cache for frozen upstreams: same features and accuracies as the stock path, keys, size limit, -f."""

import subprocess
from pathlib import Path

import pytest
import torch
from subprocess_env import PYTHON, child_env

from s3prl_emoaware.config import to_dict
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.models.ecapa import EcapaConfig, EcapaTdnn
from s3prl_emoaware.models.mockingjay import MockingjayConfig, mockingjay_model
from s3prl_emoaware.models.npc import NPCConfig, NPCModel

TINY_RUN = (
    "config.runner.eval_step=4,,config.runner.save_step=4,,config.runner.log_step=4,,"
    "config.runner.gradient_accumulate_steps=1,,config.downstream_expert.datarc.num_workers=0,,"
)
UPSTREAMS = {"mockingjay": "ems_mockingjay_local", "npc": "ems_npc_local", "ecapa": "emo_ecapa_local"}


def _checkpoint(path: Path, seed: int = 0, kind: str = "mockingjay") -> Path:
    """A randomly initialised tiny upstream of ours, in our checkpoint format."""
    torch.manual_seed(seed)
    if kind == "mockingjay":
        config = MockingjayConfig(input_dim=240, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
        model, frontend = mockingjay_model(config).state_dict(), FbankConfig(delta_order=2, cmvn=True)
    elif kind == "npc":
        config = NPCConfig(
            hidden_size=16, n_blocks=2, kernel_size=15, mask_size=7, vq_codebook_sizes=[8, 8], vq_code_dims=[8, 8]
        )
        model, frontend = NPCModel(config).state_dict(), FbankConfig(window_type="hamming", cmvn=True)
    else:
        config = EcapaConfig(
            channels=[32, 32, 32, 32, 96], attention_channels=16, res2net_scale=4, se_channels=16, embedding_dim=32
        )
        model = {f"encoder.{k}": v for k, v in EcapaTdnn(config).state_dict().items()}
        frontend = FbankConfig(window_type="hamming", cmvn=True, cmvn_std=False)
    torch.save(
        {
            "format": "s3prl_emoaware",
            "kind": "ecapa_contrastive" if kind == "ecapa" else kind,
            "model": model,
            "config": {"model": to_dict(config), "frontend": to_dict(frontend)},
            "step": 0,
        },
        path,
    )
    return path


def _upstream(ckpt: Path, kind: str = "mockingjay"):
    import s3prl_emoaware

    s3prl_emoaware.register()
    import s3prl.hub

    return getattr(s3prl.hub, UPSTREAMS[kind])(ckpt=str(ckpt)).eval()


def _cached(upstream, root: Path, limit_bytes: int = 10**9, **kwargs):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import CachedUpstream, HiddenStateStore

    store = HiddenStateStore(root, "key", limit_bytes)
    return CachedUpstream(upstream, store, upstream.get_downsample_rates("hidden_states"), **kwargs), store


def _wavs(seed: int, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(int(k), generator=g) * 0.1 for k in torch.randint(8000, 40000, (n,), generator=g)]


@pytest.mark.parametrize("kind", sorted(UPSTREAMS))
def test_our_upstreams_give_an_utterance_the_same_features_in_any_batch(tmp_path, kind):
    from s3prl.upstream.interfaces import Featurizer

    upstream = _upstream(_checkpoint(tmp_path / "up.ckpt", kind=kind), kind)
    featurizer = Featurizer(upstream, upstream_device="cpu")
    g = torch.Generator().manual_seed(5)
    wav, shorter, longer = (torch.randn(n, generator=g) * 0.1 for n in (24000, 9000, 40000))
    with torch.no_grad():
        seen = [featurizer(b, upstream(b))[0] for b in ([wav], [wav, shorter], [wav, longer], [wav, wav[:23800]])]
    for got in seen[1:]:  # as the longest, the shortest, or nearly the longest of its batch
        assert got.shape[0] <= seen[2].shape[0] and torch.allclose(got, seen[2][: got.shape[0]], atol=1e-5)


@pytest.mark.parametrize("kind", sorted(UPSTREAMS))
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_cached_batch_gives_the_featurizer_what_the_stock_batch_gives(tmp_path, kind, dtype, tolerance):
    from s3prl.upstream.interfaces import Featurizer

    upstream = _upstream(_checkpoint(tmp_path / "up.ckpt", kind=kind), kind)
    cached, store = _cached(upstream, tmp_path / "cache", dtype=dtype)
    featurizer = Featurizer(upstream, upstream_device="cpu")
    wavs = _wavs(0)
    with torch.no_grad():
        stock = featurizer(wavs, upstream(wavs))
        cold = featurizer(wavs, cached(wavs))
        # the same utterances regrouped: served from disk, cut as the stock path cuts this batch
        regrouped = [wavs[3], wavs[0]]
        warm = featurizer(regrouped, cached(regrouped))
        stock_regrouped = featurizer(regrouped, upstream(regrouped))
    assert store.misses == 4 and store.hits == 2
    for got, want in [*zip(cold, stock), *zip(warm, stock_regrouped)]:
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= tolerance * want.abs().max().item()


@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_cached_utterance_embedding_gives_the_featurizer_what_the_stock_batch_gives(tmp_path, dtype, tolerance):
    """-s utterance_embedding (ECAPA's pooled embedding over the frames) is stored and served like hidden states."""
    from s3prl.upstream.interfaces import Featurizer

    from s3prl_emoaware.s3prl_adapters.hidden_cache import CachedUpstream, HiddenStateStore

    upstream = _upstream(_checkpoint(tmp_path / "up.ckpt", kind="ecapa"), "ecapa")
    store = HiddenStateStore(tmp_path / "cache", "key", 10**9)
    rate = upstream.get_downsample_rates("utterance_embedding")
    cached = CachedUpstream(upstream, store, rate, dtype=dtype, feature="utterance_embedding")
    featurizer = Featurizer(upstream, feature_selection="utterance_embedding", upstream_device="cpu")
    wavs = _wavs(2)
    with torch.no_grad():
        out = cached(wavs)
        assert set(out) == {"utterance_embedding"} and out["utterance_embedding"].dim() == 3
        stock, cold = featurizer(wavs, upstream(wavs)), featurizer(wavs, out)
        regrouped = [wavs[2], wavs[1]]
        warm, stock_regrouped = featurizer(regrouped, cached(regrouped)), featurizer(regrouped, upstream(regrouped))
    assert store.misses == 4 and store.hits == 2
    for got, want in [*zip(cold, stock), *zip(warm, stock_regrouped)]:
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= tolerance * want.abs().max().item()
    # what is stored is the embedding (one layer, the embedding's width), not the frame states
    entry = torch.load(next((tmp_path / "cache").rglob("*.pt")), weights_only=True)
    assert entry["states"].shape[0] == 1 and entry["states"].shape[2] == upstream.encoder.config.embedding_dim


def test_feature_selection_reaches_the_cache_and_a_layer_selection_of_another_feature_bypasses_it(tmp_path):
    from argparse import Namespace

    from s3prl_emoaware.s3prl_adapters.hidden_cache import CachedUpstream, HiddenCacheConfig, _wrap_entry

    ckpt = _checkpoint(tmp_path / "ecapa.ckpt", kind="ecapa")

    def wrap(selection, layer):
        class Entry:
            model = _upstream(ckpt, "ecapa")

        entry, stores = Entry(), []
        args = Namespace(
            upstream_trainable=False,
            upstream="emo_ecapa_local",
            upstream_ckpt=str(ckpt),
            upstream_model_config=None,
            upstream_feature_selection=selection,
            upstream_layer_selection=layer,
        )
        _wrap_entry(entry, args, HiddenCacheConfig(dir=str(tmp_path / "cache")), stores)
        return entry.model, stores

    embedding, stores = wrap("utterance_embedding", None)
    hidden, more = wrap("hidden_states", None)
    assert isinstance(embedding, CachedUpstream) and embedding.feature == "utterance_embedding"
    assert isinstance(hidden, CachedUpstream) and hidden.feature == "hidden_states"
    assert stores[0].dir != more[0].dir  # two selections of one checkpoint never share entries
    bypassed, none = wrap("utterance_embedding", 0)
    assert not isinstance(bypassed, CachedUpstream) and not none


def test_layer_selection_stores_and_returns_only_those_layers(tmp_path):
    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    cached, _ = _cached(upstream, tmp_path / "cache", layers=[0, 2], dtype=torch.float32)
    wavs = _wavs(1, 2)
    with torch.no_grad():
        full, some = upstream(wavs)["hidden_states"], cached(wavs)["hidden_states"]
    assert len(some) == 2
    n = round(len(wavs[0]) / upstream.get_downsample_rates("hidden_states"))
    for got, want in zip(some, [full[0], full[2]]):
        assert torch.allclose(got[0, :n], want[0, :n], atol=1e-5)


def test_changed_checkpoint_or_config_changes_the_upstream_key(tmp_path):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig, upstream_key

    config = HiddenCacheConfig(dir=str(tmp_path))
    ckpt = _checkpoint(tmp_path / "mj.ckpt", seed=0)
    first, covers = upstream_key("ems_mockingjay_local", str(ckpt), None, config)
    assert upstream_key("ems_mockingjay_local", str(ckpt), None, config)[0] == first
    _checkpoint(ckpt, seed=1)  # same path, other weights: must never be served stale
    assert upstream_key("ems_mockingjay_local", str(ckpt), None, config)[0] != first
    assert upstream_key("ems_npc_local", str(ckpt), None, config)[0] != first
    assert (
        upstream_key("ems_mockingjay_local", str(ckpt), None, HiddenCacheConfig(dir=str(tmp_path), dtype="float32"))[0]
        != first
    )
    assert covers["checkpoint"].startswith("sha256:") and covers["checkpoint_path"] == str(ckpt)
    # without -k (a checkpoint found elsewhere) the loaded weights still tell two checkpoints apart
    by_weights = [
        upstream_key("ems_mockingjay", None, None, config, model=_upstream(_checkpoint(ckpt, seed)))[0]
        for seed in (0, 1, 0)
    ]
    assert by_weights[0] != by_weights[1] and by_weights[0] == by_weights[2]


def test_changed_audio_misses_and_the_same_audio_hits(tmp_path):
    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    cached, store = _cached(upstream, tmp_path / "cache")
    wav = _wavs(2, 1)[0]
    changed = wav.clone()
    changed[100] += 1e-3
    with torch.no_grad():
        cached([wav])
        cached([wav.clone()])
        assert (store.misses, store.hits) == (1, 1)
        cached([changed])
        cached([wav[:-160]])
    assert (store.misses, store.hits) == (3, 1)


def test_full_cache_is_one_clear_error_and_leaves_nothing_half_written(tmp_path):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheFull

    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    root = tmp_path / "cache"
    probe, probe_store = _cached(upstream, tmp_path / "probe")
    with torch.no_grad():
        probe(_wavs(3, 1))
    one_entry = probe_store.used_bytes
    limit = int(2.5 * one_entry)
    cached, store = _cached(upstream, root, limit_bytes=limit)
    with pytest.raises(HiddenCacheFull) as err, torch.no_grad():
        cached(_wavs(4, 6))
    message = str(err.value)
    assert "\n" not in message and str(root) in message and f"limit of {limit / 1e9:g} GB" in message
    entries = sorted(root.rglob("*.pt"))
    assert 1 <= len(entries) < 6 and not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert sum(p.stat().st_size for p in entries) <= store.limit_bytes
    for path in entries:  # every entry that exists is whole
        assert torch.load(path, weights_only=True)["states"].dim() == 3


def test_fine_tuned_upstream_is_never_wrapped(tmp_path):
    from argparse import Namespace

    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig, _wrap_entry

    class Entry:
        model = _upstream(_checkpoint(tmp_path / "mj.ckpt"))

    entry, stores = Entry(), []
    args = Namespace(
        upstream_trainable=True,
        upstream="ems_mockingjay_local",
        upstream_ckpt=None,
        upstream_model_config=None,
        upstream_feature_selection="hidden_states",
        upstream_layer_selection=None,
    )
    original = entry.model
    _wrap_entry(entry, args, HiddenCacheConfig(dir=str(tmp_path / "cache")), stores)
    assert entry.model is original and not stores and not (tmp_path / "cache").exists()


# --- through `s3prl-emoaware run-downstream` and the stock runner -------------------------------------------------


def _run_downstream(args, cwd):
    return subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", "run-downstream", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=cwd,
        timeout=600,
    )


def _emotion_args(corpus, ckpt, expdir, *extra, steps=8, upstream="ems_mockingjay_local"):
    override = (
        TINY_RUN + f"config.runner.total_steps={steps},,config.downstream_expert.datarc.root='{corpus}',,"
        f"config.downstream_expert.datarc.meta_data='{corpus / 'meta_data'}'"
    )
    return [
        *extra,
        "-m",
        "train",
        "-u",
        upstream,
        "-k",
        str(ckpt),
        "-d",
        "emotion",
        "-o",
        override,
        "-p",
        str(expdir),
        "--device",
        "cpu",
    ]


def _accuracies(expdir: Path) -> list:
    """The runner's dev and test accuracy lines (the emotion expert's log.log) and its test predictions."""
    lines = [ln for ln in (expdir / "log.log").read_text().splitlines() if ln.startswith(("dev", "test"))]
    assert any(ln.startswith("dev") for ln in lines) and any(ln.startswith("test") for ln in lines)
    return [lines, (expdir / "test_fold1_predict.txt").read_text()]


@pytest.mark.slow
@pytest.mark.parametrize("kind,selection", [("mockingjay", None), ("npc", None), ("ecapa", "utterance_embedding")])
def test_cached_and_uncached_runs_give_the_same_dev_and_test_accuracy(tiny_iemocap, tmp_path, kind, selection):
    ckpt = _checkpoint(tmp_path / "up.ckpt", kind=kind)
    cache = tmp_path / "cache"
    results = {}
    for name, extra in [
        ("uncached", ["--no-hidden-cache"]),
        ("cold", ["--hidden-cache", str(cache)]),
        ("warm", ["--hidden-cache", str(cache)]),
    ]:
        args = _emotion_args(tiny_iemocap, ckpt, tmp_path / name, *extra, upstream=UPSTREAMS[kind])
        out = _run_downstream(args + (["-s", selection] if selection else []), tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        results[name] = _accuracies(tmp_path / name)
        if name == "uncached":
            assert not cache.exists()
        if name == "cold":
            entries = sorted(cache.rglob("*.pt"))
            assert entries
    assert results["cold"] == results["uncached"]
    assert results["warm"] == results["uncached"]
    assert sorted(cache.rglob("*.pt")) == entries  # the warm run computed nothing new
    assert "0 entries written" in out.stderr


@pytest.mark.slow
def test_fine_tuning_run_never_uses_the_cache(tiny_iemocap, tmp_path):
    ckpt = _checkpoint(tmp_path / "mj.ckpt")
    out = _run_downstream(
        _emotion_args(tiny_iemocap, ckpt, tmp_path / "ft", "--hidden-cache", str(tmp_path / "c"), steps=4) + ["-f"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "ft" / "dev-best.ckpt").is_file() or list((tmp_path / "ft").glob("states-*.ckpt"))
    assert not (tmp_path / "c").exists() and "hidden-state cache off" in out.stderr


@pytest.mark.slow
def test_full_cache_stops_the_run_with_one_line(tiny_iemocap, tmp_path):
    ckpt = _checkpoint(tmp_path / "mj.ckpt")
    cache = tmp_path / "cache"
    out = _run_downstream(
        _emotion_args(
            tiny_iemocap, ckpt, tmp_path / "exp", "--hidden-cache", str(cache), "--hidden-cache-limit-gb", "0.00002"
        ),
        tmp_path,
    )
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and str(cache) in errors[0] and "limit of 2e-05 GB" in errors[0]
    assert errors[0] == out.stderr.strip().splitlines()[-1]
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    for path in cache.rglob("*.pt"):
        torch.load(path, weights_only=True)


def test_run_downstream_flags_place_and_switch_the_cache(tmp_path, monkeypatch):
    import argparse

    from s3prl_emoaware.cli import run_downstream as rd

    parser = argparse.ArgumentParser()
    rd.add_arguments(parser)

    def cache_argv(*flags, argv=("-m", "train", "-p", str(tmp_path / "runs" / "exp"))):
        args, _ = parser.parse_known_args(list(flags))
        return rd.hidden_cache_argv(args, list(argv), rd.scan_flags(list(argv)))

    monkeypatch.delenv("S3PRL_EMOAWARE_HIDDEN_CACHE", raising=False)
    got = cache_argv()
    assert got[:2] == ["--hidden-cache", str(tmp_path / "runs" / "hidden_cache")]  # beside the experiment
    assert "--hidden-cache-dtype" in got and got[got.index("--hidden-cache-dtype") + 1] == "float16"
    monkeypatch.setenv("S3PRL_EMOAWARE_HIDDEN_CACHE", str(tmp_path / "shared"))
    assert cache_argv()[1] == str(tmp_path / "shared")
    assert cache_argv("--hidden-cache", str(tmp_path / "mine"))[1] == str(tmp_path / "mine")
    assert cache_argv("--no-hidden-cache") == []
    assert cache_argv(argv=("-m", "train", "-f", "-p", "x")) == []
    with pytest.raises(rd.RunDownstreamError, match="no meaning with -f"):
        cache_argv("--hidden-cache-layers", "1,2", argv=("-m", "train", "-f"))
    assert cache_argv("--hidden-cache-layers", "0,3")[-2:] == ["--hidden-cache-layers", "0,3"]


def test_the_same_audio_twice_in_a_batch_is_computed_and_stored_once(tmp_path):
    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    cached, store = _cached(upstream, tmp_path / "cache", dtype=torch.float32)
    wav, other = _wavs(6, 2)
    with torch.no_grad():
        out = cached([wav, other, wav.clone()])["hidden_states"]
    assert store.misses == 2 and len(list((tmp_path / "cache").rglob("*.pt"))) == 2
    assert all(torch.equal(s[0], s[2]) for s in out)
    assert store.used_bytes == sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*.pt"))


def _counting_loads(monkeypatch) -> list:
    """Every ``torch.load`` of a cache entry from here on, by path."""
    loads, load = [], torch.load

    def counting(f, *args, **kwargs):
        loads.append(str(f))
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return loads


def test_memory_tier_serves_what_this_process_read_and_evicts_the_least_recent(tmp_path, monkeypatch):
    """Entries read or written once are served from memory (no disk read, no digest) while their file
    exists; the memory bound evicts the least recently used; 0 turns it off."""
    from s3prl_emoaware.s3prl_adapters.hidden_cache import CachedUpstream, HiddenStateStore

    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    a, b = _wavs(7, 2)
    a, b = a[:16000], b[:16000]  # the same length, so entries have the same size
    loads = _counting_loads(monkeypatch)

    def cached(root, memory_bytes):
        store = HiddenStateStore(root, "key", 10**9, memory_bytes=memory_bytes)
        return CachedUpstream(upstream, store, upstream.get_downsample_rates("hidden_states")), store

    with torch.no_grad():
        model, store = cached(tmp_path / "on", 10**8)
        first = model([a, b])["hidden_states"]
        again = model([a, b])["hidden_states"]
        assert (store.misses, store.hits, loads) == (2, 2, [])
        assert all(torch.equal(x, y) for x, y in zip(first, again))
        for p in (tmp_path / "on").rglob("*.pt"):
            p.unlink()  # memory never outlives the file: computed again
        model([a])
        assert (store.misses, store.hits) == (3, 2)

        model, store = cached(tmp_path / "off", 0)
        model([a])
        model([a])
        assert (store.misses, store.hits, len(loads)) == (1, 1, 1)

        probe, probe_store = cached(tmp_path / "probe", 10**8)
        probe([a])
        one = probe_store.memory.used_bytes
        assert one > 0
        loads.clear()
        model, store = cached(tmp_path / "lru", int(1.5 * one))  # room for one entry
        model([a])
        model([b])  # evicts a
        model([b])
        assert (store.misses, store.hits, loads) == (2, 1, [])
        model([a])  # from disk
        assert (store.misses, store.hits, len(loads)) == (2, 2, 1)


def test_memory_tier_is_shared_by_the_stores_of_one_process(tmp_path, monkeypatch):
    """A batch builds a runner, and a store, per fold: a later store on the same folder serves what an
    earlier one read, from memory; a store under another upstream key does not see them."""
    from s3prl_emoaware.s3prl_adapters.hidden_cache import CachedUpstream, HiddenStateStore

    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    (a,) = _wavs(8, 1)
    loads = _counting_loads(monkeypatch)

    def cached(key):
        store = HiddenStateStore(tmp_path / "cache", key, 10**9, memory_bytes=10**8)
        return CachedUpstream(upstream, store, upstream.get_downsample_rates("hidden_states")), store

    with torch.no_grad():
        model, first = cached("key")
        expected = model([a])["hidden_states"]
        model, second = cached("key")  # the next fold's runner
        got = model([a])["hidden_states"]
        assert (second.misses, second.hits, loads) == (0, 1, [])
        assert all(torch.equal(x, y) for x, y in zip(expected, got))
        model, other = cached("other-key")  # another upstream: its own entries
        model([a])
        assert (other.misses, other.hits) == (1, 0)


def test_decoded_audio_memo_decodes_a_file_once_until_it_changes(tmp_path, monkeypatch):
    """s3prl's datasets read through torchaudio.load: with the memo a file is decoded once per process
    while its size and mtime hold, each call gets its own copy, and the original load is back after."""
    import os

    import soundfile as sf
    import torchaudio

    from s3prl_emoaware.s3prl_adapters.decoded_audio import torchaudio_load_memo

    decoded = []

    def fake_load(uri, *args, **kwargs):
        decoded.append(str(uri))
        wav, rate = sf.read(str(uri), dtype="float32")
        return torch.from_numpy(wav).unsqueeze(0), rate

    monkeypatch.setattr(torchaudio, "load", fake_load)
    path = tmp_path / "a.wav"
    sf.write(str(path), _wavs(9, 1)[0].numpy(), 16000)
    with torchaudio_load_memo() as memo:
        first, rate = torchaudio.load(str(path))
        first[0, :10] = 0.0  # the caller's copy: the memo keeps its own
        again, _ = torchaudio.load(path)
        assert decoded == [str(path)] and rate == 16000
        assert torch.equal(again, fake_load(path)[0]) and not torch.equal(again, first)
        decoded.clear()
        sf.write(str(path), _wavs(10, 1)[0].numpy()[:8000], 16000)  # rewritten: decoded again
        os.utime(path, ns=(1, 1))
        changed, _ = torchaudio.load(str(path))
        assert decoded == [str(path)] and changed.shape[-1] == 8000
        with pytest.raises(RuntimeError, match="missing.wav"):  # a missing file goes to the decoder, which names it
            torchaudio.load(str(tmp_path / "missing.wav"))
        assert memo.used_bytes == changed.numel() * 4
    assert torchaudio.load is fake_load


def test_launcher_installs_the_audio_memo_with_the_cache_only(tmp_path, monkeypatch):
    import torchaudio

    from s3prl_emoaware.s3prl_adapters import launch

    seen = []
    monkeypatch.setattr(launch, "run_once", lambda argv, cache=None: seen.append(torchaudio.load))
    original = torchaudio.load
    launch.main(["-m", "train"])
    launch.main(["--hidden-cache", str(tmp_path / "c"), "-m", "train"])
    assert seen[0] is original and seen[1] is not original and torchaudio.load is original


def test_memory_flag_reaches_the_runner_process_and_defaults_agree(tmp_path, monkeypatch):
    import argparse
    import dataclasses

    from s3prl_emoaware.cli import run_downstream as rd
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig, HiddenCacheError
    from s3prl_emoaware.s3prl_adapters.launch import split_cache_flags
    from s3prl_emoaware.s3prl_adapters.runner import HiddenCacheRequest

    parser = argparse.ArgumentParser()
    rd.add_arguments(parser)
    argv = ["-m", "train", "-p", str(tmp_path / "exp")]
    monkeypatch.delenv("S3PRL_EMOAWARE_HIDDEN_CACHE", raising=False)
    for flags, expected in (([], HiddenCacheConfig.memory_gb), (["--hidden-cache-memory-gb", "0.25"], 0.25)):
        args, _ = parser.parse_known_args(flags)
        config, rest = split_cache_flags(rd.hidden_cache_argv(args, argv, rd.scan_flags(argv)) + argv)
        assert config.memory_gb == expected and rest == argv
    with pytest.raises(HiddenCacheError, match="--hidden-cache-memory-gb takes a number"):
        split_cache_flags(["--hidden-cache", "d", "--hidden-cache-memory-gb", "lots"])
    with pytest.raises(HiddenCacheError, match="must be >= 0"):
        HiddenCacheConfig(dir="d", memory_gb=-1)
    # the runner side's defaults are the cache's own
    config_defaults = {f.name: f.default for f in dataclasses.fields(HiddenCacheConfig)}
    for f in dataclasses.fields(HiddenCacheRequest):
        if f.name in ("limit_gb", "dtype", "memory_gb"):
            assert f.default == config_defaults[f.name], f.name


def test_stores_of_one_folder_scan_it_once_and_share_what_they_write(tmp_path, monkeypatch):
    from s3prl_emoaware.s3prl_adapters import hidden_cache
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenStateStore

    scans = []
    original = hidden_cache._FolderUsage.__init__

    def counting(self, root):
        scans.append(root)
        original(self, root)

    monkeypatch.setattr(hidden_cache._FolderUsage, "__init__", counting)
    root = tmp_path / "cache"
    first = HiddenStateStore(root, "key", 10**9)
    entry = {"states": torch.zeros(1, 4, 8, dtype=torch.float16), "native": 4, "n_samples": 1000}
    first.put("a" * 32, entry)
    second, third = HiddenStateStore(root, "key", 10**9), HiddenStateStore(root, "key", 10**9)
    assert len(scans) == 1
    assert second.used_bytes == third.used_bytes == first.used_bytes > 0
    third.put("b" * 32, entry)
    assert second.used_bytes == third.used_bytes == sum(p.stat().st_size for p in root.rglob("*.pt"))
    # a folder removed and made again is scanned again: nothing stale is counted
    import shutil

    shutil.rmtree(root)
    again = HiddenStateStore(root, "key", 10**9)
    assert again.used_bytes == 0 and len(scans) == 2


def _filled_store(root: Path, ckpt: Path, feature: str = "hidden_states", n: int = 2):
    """A cache folder for ``ckpt`` as the runner makes it (key and meta.json), holding ``n`` entries."""
    from s3prl_emoaware.s3prl_adapters.hidden_cache import (
        CachedUpstream,
        HiddenCacheConfig,
        HiddenStateStore,
        upstream_key,
    )

    key, covers = upstream_key("ems_mockingjay_local", str(ckpt), None, HiddenCacheConfig(dir=str(root)), feature)
    store = HiddenStateStore(root, key, 10**9, meta=covers)
    upstream = _upstream(ckpt)
    with torch.no_grad():
        CachedUpstream(upstream, store, upstream.get_downsample_rates("hidden_states"))(_wavs(7, n))
    return store


def test_dropping_a_checkpoints_entries_frees_its_folders_and_keeps_the_others(tmp_path):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import drop_checkpoint_entries

    root = tmp_path / "cache"
    done, running = _checkpoint(tmp_path / "done.ckpt", seed=0), _checkpoint(tmp_path / "running.ckpt", seed=1)
    # two selections of the finished checkpoint (two upstream keys), one of the other
    gone = [_filled_store(root, done), _filled_store(root, done, feature="other_selection")]
    kept = _filled_store(root, running)
    size_of = lambda store: sum(p.stat().st_size for p in store.dir.rglob("*.pt"))  # noqa: E731
    expected = sum(size_of(s) for s in gone)
    assert expected > 0 and size_of(kept) > 0

    freed = drop_checkpoint_entries(root, done)
    assert freed == {"folders": 2, "bytes": expected}
    assert not any(s.dir.exists() for s in gone) and len(list(kept.dir.rglob("*.pt"))) == 2
    # what stays is still served
    again = _filled_store(root, running)
    assert (again.hits, again.misses) == (2, 0)
    # nothing left to drop, and a missing folder is no error
    assert drop_checkpoint_entries(root, done) == {"folders": 0, "bytes": 0}
    assert drop_checkpoint_entries(tmp_path / "absent", done) == {"folders": 0, "bytes": 0}
