"""Generated corpora: official layouts, determinism, prosody that really differs, clear errors."""

import csv
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from subprocess_env import PYTHON, child_env

from s3prl_emoaware.corpora import espeak
from s3prl_emoaware.corpora.iemocap import prepare_iemocap_meta
from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.corpora.synth import synthesize_corpus
from s3prl_emoaware.utils.errors import MissingToolError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_fsc):
    a = synthesize_corpus("fsc", tmp_path / "a", seed=0, size="tiny")
    b = synthesize_corpus("fsc", tmp_path / "b", seed=1, size="tiny")
    assert _digest(a) == _digest(tiny_fsc)
    assert _digest(a) != _digest(b)


def test_iemocap_layout_labels_and_meta(tiny_iemocap, tmp_path):
    wavs = sorted(tiny_iemocap.glob("Session*/sentences/wav/*/*.wav"))
    assert {w.parts[-5] for w in wavs} == {f"Session{i}" for i in range(1, 6)}
    info = sf.info(str(wavs[0]))
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    labels = "".join(p.read_text() for p in tiny_iemocap.glob("Session*/dialog/EmoEvaluation/*.txt"))
    assert "\texc\t" in labels  # merged into hap by the preparation, as in SUPERB
    assert "\txxx\t" in labels  # no-agreement turn, dropped by the preparation
    for k in range(1, 6):
        meta = json.loads((tiny_iemocap / f"meta_data/Session{k}/test_meta_data.json").read_text())
        train = json.loads((tiny_iemocap / f"meta_data/Session{k}/train_meta_data.json").read_text())
        assert meta["labels"] == {"neu": 0, "hap": 1, "ang": 2, "sad": 3}
        assert all(m["path"].startswith(f"Session{k}/") for m in meta["meta_data"])
        assert not any(m["path"].startswith(f"Session{k}/") for m in train["meta_data"])
        assert {m["label"] for m in meta["meta_data"]} <= {"neu", "hap", "ang", "sad"}
        assert {m["speaker"] for m in meta["meta_data"]} == {f"Ses0{k}F", f"Ses0{k}M"}
        assert all((tiny_iemocap / m["path"]).is_file() for m in meta["meta_data"])
    # the package's preparation step rebuilds exactly the shipped JSON files from the raw layout
    prepare_iemocap_meta(tiny_iemocap, tmp_path / "meta")
    for path in (tiny_iemocap / "meta_data").rglob("*.json"):
        assert json.loads(path.read_text()) == json.loads(
            (tmp_path / "meta" / path.relative_to(tiny_iemocap / "meta_data")).read_text()
        )


def test_emotional_segments_inside_utterances(tiny_iemocap):
    segments = json.loads((tiny_iemocap / "emotional_segments.json").read_text())
    utts = {u.utt_id: u for u in read_corpus(tiny_iemocap)}
    mixed = 0
    for utt_id, seg in segments.items():
        u = utts[utt_id]
        if u.emotion == "neu":
            assert seg is None
            continue
        if seg is None:
            continue
        duration = sf.info(str(u.path)).duration
        assert 0 <= seg[0] < seg[1] <= duration + 1e-3
        mixed += seg[0] > 0.5  # starts neutral, turns emotional part-way
    assert mixed >= 3


def _pitch_and_energy(wav, rate=16000):
    frames = [wav[i : i + 640] for i in range(0, len(wav) - 640, 320)]
    energies, pitches = [], []
    for f in frames:
        e = float(np.sqrt(np.mean(f**2)))
        energies.append(e)
        if e < 0.02:
            continue
        ac = np.correlate(f, f, "full")[len(f) - 1 :]
        lo, hi = rate // 400, rate // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        pitches.append(rate / lag)
    return np.median(pitches), np.mean(energies)


def test_emotion_prosody_differs_as_intended():
    angry = espeak.synthesize("i never expected to see you here", "en-us+m3", espeak.Prosody(62, 80, 215, 185))
    sad = espeak.synthesize("i never expected to see you here", "en-us+m3", espeak.Prosody(25, 8, 115, 65))
    f0_ang, e_ang = _pitch_and_energy(angry)
    f0_sad, e_sad = _pitch_and_energy(sad)
    assert f0_ang > 1.2 * f0_sad
    assert e_ang > 1.5 * e_sad
    assert len(sad) > 1.4 * len(angry)  # slower speech


def test_librispeech_layout_lexicon_covers_transcripts(tiny_librispeech):
    lexicon = dict(line.split("\t") for line in (tiny_librispeech / "lexicon.txt").read_text().splitlines())
    phones = set((tiny_librispeech / "phones.txt").read_text().split())
    for split in ("train-clean-100", "dev-clean", "test-clean"):
        trans = list((tiny_librispeech / split).glob("*/*/*.trans.txt"))
        assert trans, split
        for t in trans:
            spk, chapter = t.parts[-3], t.parts[-2]
            assert t.name == f"{spk}-{chapter}.trans.txt"
            text = t.read_text()
            assert text.endswith("\n")
            for line in text.splitlines():
                utt, words = line.split(" ", 1)
                assert (t.parent / f"{utt}.flac").is_file() and utt.startswith(f"{spk}-{chapter}-")
                assert words == words.upper()
                for w in words.split():
                    assert set(lexicon[w].split()) <= phones


def test_voxceleb_layout_speakers_videos_and_meta(tmp_path):
    from s3prl_emoaware.corpora.reader import detect_layout

    root = synthesize_corpus("voxceleb", tmp_path / "vox", seed=0, size="tiny")
    assert detect_layout(root) == "voxceleb"
    files = sorted(root.glob("wav/id*/*/[0-9][0-9][0-9][0-9][0-9].wav"))
    utts = read_corpus(root, sets="all")
    assert len(files) == len(utts) == 8 * 3
    assert len({u.speaker for u in utts}) == 8 and all(u.emotion is None for u in utts)
    with open(root / "vox1_meta.csv", newline="") as f:
        meta = {row["VoxCeleb1 ID"]: row["Set"] for row in csv.DictReader(f, delimiter="\t")}
    assert set(meta) == {u.speaker for u in utts} and {u.session for u in utts} == {"dev", "test"}
    assert all(len({p.parent.name for p in files if p.parts[-3] == spk}) == 2 for spk in meta)  # two videos each


def test_fsc_layout_slots_and_disjoint_speakers(tiny_fsc):
    splits = {}
    for split in ("train", "valid", "test"):
        with open(tiny_fsc / "data" / f"{split}_data.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0].keys()) == ["", "path", "speakerId", "transcription", "action", "object", "location"]
        assert all((tiny_fsc / r["path"]).is_file() for r in rows)
        splits[split] = rows
    speakers = {s: {r["speakerId"] for r in rows} for s, rows in splits.items()}
    assert not (speakers["train"] & speakers["valid"]) and not (speakers["train"] & speakers["test"])
    for slot in ("action", "object", "location"):
        seen = {r[slot] for r in splits["train"]}
        assert {r[slot] for r in splits["valid"] + splits["test"]} <= seen
    assert "none" in {r["location"] for r in splits["train"]}


def test_missing_espeak_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    espeak.espeak_binary.cache_clear()
    try:
        with pytest.raises(MissingToolError, match="apt-get install espeak-ng"):
            synthesize_corpus("fsc", tmp_path / "x", seed=0)
        assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.tmp-*"))
    finally:
        espeak.espeak_binary.cache_clear()


def test_existing_output_is_one_clear_error_line(tiny_fsc):
    out = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", "synth-corpus", "fsc", str(tiny_fsc)],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "exists and is not empty" in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions (the next test covers root)")
def test_read_only_output_folder_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        out = subprocess.run(
            [PYTHON, "-m", "s3prl_emoaware.cli", "synth-corpus", "fsc", str(locked / "c")],
            capture_output=True,
            text=True,
            env=child_env(),
        )
        assert out.returncode == 2 and str(locked) in out.stderr and out.stderr.strip().count("\n") == 0
    finally:
        os.chmod(locked, 0o700)


def test_unwritable_output_parent_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", "synth-corpus", "fsc", str(blocker / "corpus")],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert out.returncode == 2
    assert str(blocker) in out.stderr and out.stderr.strip().count("\n") == 0


def test_iemocap_utts_per_speaker_grows_every_fold_and_a_kept_corpus_must_match(tmp_path):
    from s3prl_emoaware.demo.steps import synthesize_missing
    from s3prl_emoaware.utils.errors import UserFacingError

    path = tmp_path / "iemocap"
    plan = {"iemocap": ("iemocap", path, 0)}
    synthesize_missing(plan, "tiny", {"iemocap": {"utts_per_speaker": 9}})
    for k in range(1, 6):  # 2 speakers x 9 per session, every one labelled and in its session's test split
        test = json.loads((path / f"meta_data/Session{k}/test_meta_data.json").read_text())["meta_data"]
        assert len(test) == 18 and {m["speaker"] for m in test} == {f"Ses0{k}F", f"Ses0{k}M"}
    assert json.loads((path / "SYNTHETIC_CORPUS.json").read_text())["quirks"] == {"utts_per_speaker": 9}
    assert synthesize_missing(plan, "tiny", {"iemocap": {"utts_per_speaker": 9}}) == {"iemocap": "kept"}
    # the same folder asked for with the preset's count (or another seed) is refused, not silently reused
    with pytest.raises(UserFacingError, match=r"iemocap: kept corpus was generated with other settings.*options"):
        synthesize_missing(plan, "tiny")
    with pytest.raises(UserFacingError, match=r"seed: 0 there, 1 asked"):
        synthesize_missing({"iemocap": ("iemocap", path, 1)}, "tiny", {"iemocap": {"utts_per_speaker": 9}})
    with pytest.raises(ValueError, match="utts_per_speaker must be in 1..899"):
        synthesize_corpus("iemocap", tmp_path / "bad", size="tiny", utts_per_speaker=900)
