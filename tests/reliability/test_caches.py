"""Caches that cannot lie: the intensity cache and the hidden-state cache (issue 18, item 3).

Every entry is keyed by the content of its audio and the identity of the model that made it. A
planted missing, wrong-length, stale or damaged entry must be detected: recomputed by the writer
(a resumed extraction, the hidden-state cache on a hit) or named in one line by a reader, never
served. Intensity curves come from the model-free energy source or from tiny random StrengthNets,
so each probe takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from s3prl_emoaware.cli.main import main
from s3prl_emoaware.config import shipped_config, to_dict
from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.intensity.cache import (
    CorruptIntensityError,
    IntensityCache,
    IntensityMismatchError,
    MissingIntensityError,
    audio_hash,
)
from s3prl_emoaware.intensity.extract import extract_intensities
from s3prl_emoaware.pretraining.data import build_dataset
from s3prl_emoaware.utils.audio import read_audio

from .cli_lines import assert_one_line as _one_line

AREA = "cache"


@pytest.fixture()
def corpus(tiny_iemocap, tmp_path):
    path = tmp_path / "corpus"
    shutil.copytree(tiny_iemocap, path)
    return path


@pytest.fixture()
def energy_cache(corpus, tmp_path):
    out = tmp_path / "cache"
    extract_intensities(corpus, out, source="energy", n_jobs=1)
    return out


def _rewrite(path: Path, transform) -> None:
    """Rewrite a clip with other samples of the same length (same header, same frame count)."""
    wav, rate = sf.read(str(path), dtype="float32")
    sf.write(str(path), transform(wav), rate, subtype="PCM_16")


def _first(corpus: Path):
    return read_corpus(corpus)[0]


def _strengthnet(path: Path, seed: int) -> str:
    from s3prl_emoaware.intensity.strengthnet import StrengthNet, StrengthNetConfig

    torch.manual_seed(seed)
    model = StrengthNet(StrengthNetConfig(dense_dim=27, channels=[4, 8], lstm_dim=8, hidden_dim=8))
    model.input_mean.fill_(-5.0), model.input_std.fill_(3.0)
    torch.save({"model": model.state_dict(), "config": to_dict(model.config)}, path)
    return str(path)


# --- intensity cache: the audio -----------------------------------------------------------------


@pytest.mark.probe(
    area=AREA,
    probe="intensity cache of corpus A read for corpus B: same utterance ids and frame "
    "counts, one clip with other samples",
    behaviour="pre-training's item read raises IntensityMismatchError naming the utterance and the "
    "cached file; the curve is never served",
)
def test_curve_of_other_audio_with_same_id_and_length_is_refused(corpus, energy_cache, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(corpus, other)
    u = _first(other)
    _rewrite(u.path, lambda w: -w[::-1])
    cache = IntensityCache(energy_cache)
    dataset = build_dataset(read_corpus(other), FbankConfig(), cache)  # frame counts agree: the index check passes
    index = next(i for i, e in enumerate(dataset.entries) if e.utt_id == u.utt_id)
    with pytest.raises(IntensityMismatchError) as err:
        dataset[index]
    message = str(err.value)
    assert u.utt_id in message and "other audio" in message and "\n" not in message
    assert dataset[(index + 1) % len(dataset.entries)].intensity is not None  # the others are served


@pytest.mark.probe(
    area=AREA,
    probe="a clip rewritten in place (same path, same length) after its curve was cached",
    behaviour="pre-training refuses the stale curve in one line; re-running `intensity` into the same "
    "cache recomputes exactly that entry (size/mtime changed, samples' hash differs)",
)
def test_stale_entry_is_refused_then_recomputed(corpus, energy_cache):
    u = _first(corpus)
    before = IntensityCache(energy_cache).items[u.utt_id]
    _rewrite(u.path, lambda w: 0.5 * w)
    wav = read_audio(u.path)
    with pytest.raises(IntensityMismatchError, match="the file changed since the extraction"):
        IntensityCache(energy_cache).get(u.utt_id, wav)
    counts = extract_intensities(corpus, energy_cache, source="energy", n_jobs=1)
    assert counts["new"] == 1
    after = IntensityCache(energy_cache)
    assert after.items[u.utt_id]["audio_hash"] == audio_hash(wav) != before["audio_hash"]
    assert after.get(u.utt_id, wav).shape == (before["num_frames"],)


@pytest.mark.probe(
    area=AREA,
    probe="a clip touched (mtime changed, same samples) after its curve was cached",
    behaviour="a resumed extraction decodes it once, finds the same samples' hash and keeps the "
    "entry (nothing recomputed)",
)
def test_touched_file_is_not_recomputed(corpus, energy_cache):
    u = _first(corpus)
    st = os.stat(u.path)
    os.utime(u.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert extract_intensities(corpus, energy_cache, source="energy", n_jobs=1)["new"] == 0
    assert IntensityCache(energy_cache).items[u.utt_id]["audio_mtime_ns"] == st.st_mtime_ns + 10**9


# --- intensity cache: the model ------------------------------------------------------------------


@pytest.mark.probe(
    area=AREA,
    probe="`intensity --model B` resumed into a cache made by StrengthNet A (and a cache "
    "of source energy resumed with StrengthNet)",
    behaviour="exit 2, one line naming the cache and both models (checkpoint hashes); no curve added",
)
def test_other_model_into_the_same_cache_is_refused(corpus, tmp_path, capsys):
    a, b = _strengthnet(tmp_path / "a.ckpt", 0), _strengthnet(tmp_path / "b.ckpt", 1)
    out = tmp_path / "sn_cache"
    assert main(["intensity", "--corpus", str(corpus), "--out", str(out), "--model", a, "--jobs", "1"]) == 0
    capsys.readouterr()
    index = json.loads((out / "index.json").read_text())
    assert len(index["model"]["checkpoint_sha256"]) == 64 and index["model"]["config"]["lstm_dim"] == 8
    code = main(["intensity", "--corpus", str(corpus), "--out", str(out), "--model", b, "--jobs", "1"])
    _one_line(code, capsys.readouterr().err, str(out), "a.ckpt", "b.ckpt", "use another --out")
    assert json.loads((out / "index.json").read_text()) == index
    # the same checkpoint again resumes (nothing to do)
    assert main(["intensity", "--corpus", str(corpus), "--out", str(out), "--model", a, "--jobs", "1"]) == 0
    assert "0 new" in capsys.readouterr().out


@pytest.mark.probe(
    area=AREA,
    probe="the StrengthNet checkpoint overwritten in place by a retrained one, then `intensity` resumed into its cache",
    behaviour="exit 2, one line: the cache was made by another checkpoint (same path, other SHA-256)",
)
def test_retrained_checkpoint_at_the_same_path_is_refused(corpus, tmp_path, capsys):
    ckpt = _strengthnet(tmp_path / "sn.ckpt", 0)
    out = tmp_path / "sn_cache"
    utts = read_corpus(corpus)[:3]
    extract_intensities(corpus, out, model_path=ckpt, utterances=utts, n_jobs=1)
    _strengthnet(tmp_path / "sn.ckpt", 5)
    code = main(["intensity", "--corpus", str(corpus), "--out", str(out), "--model", ckpt, "--jobs", "1"])
    _one_line(code, capsys.readouterr().err, str(out), "refusing to add curves")


# --- intensity cache: damaged entries ------------------------------------------------------------


def _damage(path: Path, how: str, item: dict) -> None:
    if how == "missing":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"not a numpy file")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif how == "wrong_length":
        np.save(path, np.zeros(item["num_frames"] - 3, dtype=np.float32))
    elif how == "flipped_value":  # same shape, values in range: only the content hash tells
        values = np.load(path)
        values[len(values) // 2] = 1.0 - values[len(values) // 2]
        np.save(path, values)
    elif how == "nan":
        values = np.load(path)
        values[0] = np.nan
        np.save(path, values)
    elif how == "pickled":  # an object array: loading it would need pickle
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)


DAMAGE = ("missing", "garbage", "truncated", "wrong_length", "flipped_value", "nan", "pickled")


@pytest.mark.probe(
    area=AREA,
    probe="an intensity cache entry that is {how}",
    behaviour="readers raise CorruptIntensityError, one line naming the file and the fix; a resumed "
    "extraction recomputes that entry only and the cache then serves it",
)
@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_intensity_entry_is_named_then_recomputed(corpus, energy_cache, how):
    u = _first(corpus)
    cache = IntensityCache(energy_cache)
    good = cache.get(u.utt_id)
    item = cache.items[u.utt_id]
    path = energy_cache / item["file"]
    _damage(path, how, item)
    with pytest.raises(CorruptIntensityError) as err:
        IntensityCache(energy_cache).get(u.utt_id)
    message = str(err.value)
    assert str(path) in message and "s3prl-emoaware intensity" in message and "\n" not in message
    assert extract_intensities(corpus, energy_cache, source="energy", n_jobs=1)["new"] == 1
    np.testing.assert_array_equal(IntensityCache(energy_cache).get(u.utt_id), good)


@pytest.mark.probe(
    area=AREA,
    probe="a damaged intensity entry met by `pretrain` (EMS masking)",
    behaviour="exit 2, one line naming the entry's file; no step is taken on it",
)
def test_pretrain_on_a_damaged_entry_is_one_line(corpus, energy_cache, tmp_path, capsys):
    cache = IntensityCache(energy_cache)
    path = energy_cache / cache.items[_first(corpus).utt_id]["file"]
    _damage(path, "flipped_value", cache.items[_first(corpus).utt_id])
    argv = [
        "pretrain",
        "-c",
        str(shipped_config("upstream_configs", "ems_mockingjay_tiny")),
        "--corpus",
        str(corpus),
        "--intensity",
        str(energy_cache),
        "--out",
        str(tmp_path / "exp"),
        "-o",
        "training.total_steps=2",
        "-o",
        "training.num_workers=0",
        "-o",
        "training.batch_size=64",
    ]
    _one_line(main(argv), capsys.readouterr().err, str(path), "damaged")


@pytest.mark.probe(
    area=AREA,
    probe="an intensity cache whose index.json is truncated / not JSON",
    behaviour="one line naming index.json (MissingIntensityError), for readers and for a resumed extraction (exit 2)",
)
def test_damaged_index_is_one_line(corpus, energy_cache, capsys):
    index = energy_cache / "index.json"
    index.write_text(index.read_text()[:50])
    with pytest.raises(MissingIntensityError, match="index.json: unreadable cache index"):
        IntensityCache(energy_cache)
    code = main(["intensity", "--corpus", str(corpus), "--out", str(energy_cache), "--source", "energy"])
    _one_line(code, capsys.readouterr().err, "index.json", "unreadable cache index")


@pytest.mark.probe(
    area=AREA,
    probe="a version-2 intensity cache (no model identity) resumed by `intensity`",
    behaviour="its curves are recomputed (logged), the index becomes version 3 with the model; "
    "readers still read version 2",
)
def test_version_2_cache_is_read_and_recomputed_on_resume(corpus, energy_cache):
    index = energy_cache / "index.json"
    data = json.loads(index.read_text())
    data["version"] = 2
    data.pop("model")
    index.write_text(json.dumps(data))
    assert len(IntensityCache(energy_cache)) == len(data["items"])
    counts = extract_intensities(corpus, energy_cache, source="energy", n_jobs=1)
    assert counts["new"] == len(data["items"])
    assert json.loads(index.read_text())["model"] == {"source": "energy"}


# --- hidden-state cache -------------------------------------------------------------------------


@pytest.fixture()
def hidden(tmp_path):
    from test_hidden_cache import _cached, _checkpoint, _upstream, _wavs

    upstream = _upstream(_checkpoint(tmp_path / "mj.ckpt"))
    cached, store = _cached(upstream, tmp_path / "hc")
    return upstream, cached, store, _wavs(7, 3)


def _states(out):
    return torch.stack(out["hidden_states"])


HIDDEN_DAMAGE = ("garbage", "truncated", "flipped_byte", "other_audio", "fields_missing", "wrong_layers")


@pytest.mark.probe(
    area=AREA,
    probe="a hidden-state cache entry that is {how}",
    behaviour="detected on the hit (one warning naming the file), deleted and recomputed; the "
    "batch gets the same states as from a cold cache",
)
@pytest.mark.parametrize("how", HIDDEN_DAMAGE)
def test_damaged_hidden_state_entry_is_recomputed(hidden, how, caplog):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import audio_key

    _, cached, store, wavs = hidden
    with torch.no_grad():
        cold = _states(cached(wavs))
    path = store.path(audio_key(wavs[1]))
    if how == "garbage":
        path.write_bytes(b"\0" * 100)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-200])
    elif how == "flipped_byte":  # inside the tensor data: torch.load reads it without complaint
        entry = torch.load(path, weights_only=True)
        raw = bytearray(path.read_bytes())
        needle = entry["states"][0, 0].contiguous().view(torch.uint8).numpy().tobytes()
        at = raw.find(needle)
        assert at > 0
        raw[at] ^= 0x40
        path.write_bytes(bytes(raw))
        assert not torch.equal(torch.load(path, weights_only=True)["states"], entry["states"])
    elif how == "other_audio":  # another utterance's entry under this audio's key
        shutil.copyfile(store.path(audio_key(wavs[0])), path)
    elif how == "fields_missing":
        torch.save({"states": torch.zeros(2, 3, 4)}, path)
    elif how == "wrong_layers":
        entry = torch.load(path, weights_only=True)
        entry["states"] = entry["states"][:1].clone()
        from s3prl_emoaware.s3prl_adapters.hidden_cache import states_digest

        entry["digest"] = states_digest(entry["states"])
        torch.save(entry, path)
    misses = store.misses
    with torch.no_grad(), caplog.at_level("WARNING"):
        warm = _states(cached(wavs))
    assert store.misses == misses + 1 and store.repaired == 1
    assert any(str(path) in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(warm, cold, rtol=0, atol=0)
    assert torch.load(path, weights_only=True)["n_samples"] == len(wavs[1])


@pytest.mark.probe(
    area=AREA,
    probe="hidden-state cache entries written before the per-entry digest (no 'digest' field), one of them "
    "with other finite states of the same shape",
    behaviour="never served: each is a miss, recomputed and rewritten with a digest (one warning, naming the "
    "first file); the batch gets the cold cache's states, and the next one is served from the new entries",
)
def test_entry_without_digest_is_recomputed(hidden, caplog):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import audio_key, states_digest

    _, cached, store, wavs = hidden
    with torch.no_grad():
        cold = _states(cached(wavs))
    paths = [store.path(audio_key(w)) for w in wavs]
    for i, path in enumerate(paths):
        entry = torch.load(path, weights_only=True)
        del entry["digest"]
        if i == 1:  # only a digest would tell these states from the real ones
            entry["states"] = entry["states"] + 1
        torch.save(entry, path)
    misses = store.misses
    with torch.no_grad(), caplog.at_level("WARNING"):
        warm = _states(cached(wavs))
    torch.testing.assert_close(warm, cold, rtol=0, atol=0)
    assert store.misses == misses + len(wavs)
    warned = [r.getMessage() for r in caplog.records if "no digest" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(str(paths[0])), warned
    for path in paths:
        entry = torch.load(path, weights_only=True)
        assert entry["digest"] == states_digest(entry["states"])
    hits = store.hits
    with torch.no_grad():
        again = _states(cached(wavs))
    assert store.hits == hits + len(wavs)
    torch.testing.assert_close(again, cold, rtol=0, atol=0)


@pytest.mark.probe(
    area=AREA,
    probe="hidden-state cache: the checkpoint rewritten in place (same path), and changed audio",
    behaviour="another upstream key (checkpoint bytes and weights hashed), and a miss for the "
    "changed audio: no old entry is served",
)
def test_changed_checkpoint_and_audio_miss(tmp_path, hidden):
    from test_hidden_cache import _checkpoint, _upstream

    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig, upstream_key

    upstream, cached, store, wavs = hidden
    config = HiddenCacheConfig(dir=str(tmp_path / "hc"))
    ckpt = str(tmp_path / "mj.ckpt")
    before, _ = upstream_key("ems_mockingjay_local", ckpt, None, config, model=upstream)
    _checkpoint(tmp_path / "mj.ckpt", seed=3)
    after, _ = upstream_key("ems_mockingjay_local", ckpt, None, config, model=_upstream(tmp_path / "mj.ckpt"))
    assert before != after
    with torch.no_grad():
        cached(wavs)
        changed = [w.clone() for w in wavs]
        changed[0][5] += 1e-4
        cached(changed)
    assert (store.misses, store.hits) == (4, 2)


@pytest.mark.probe(
    area=AREA,
    probe="hidden-state cache config out of range (limit 0 / inf GB, unknown dtype, empty dir)",
    behaviour="HiddenCacheError, one line naming the option",
)
@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"limit_gb": 0.0}, "limit-gb"),
        ({"limit_gb": float("inf")}, "limit-gb"),
        ({"dtype": "int8"}, "dtype"),
        ({"dir": ""}, "dir"),
    ],
)
def test_hidden_cache_config_ranges(tmp_path, kwargs, name):
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig, HiddenCacheError

    with pytest.raises(HiddenCacheError, match=name):
        HiddenCacheConfig(**{"dir": str(tmp_path), **kwargs})
