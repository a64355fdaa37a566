"""Readers against the quirks of the released corpora, each on generated audio (issue 13).

48 kHz RAVDESS (and 8 / 44.1 kHz files) resampled to 16 kHz; LibriSpeech split folders and
explicit splits; ESD's Mandarin speakers and split sub-folders; macOS AppleDouble files;
VoxCeleb1's dev/test sets; CMUdict-style lexicons and missing words; IEMOCAP's release count.
"""

import logging
import shutil

import numpy as np
import pytest
import soundfile as sf
from subprocess_env import our_cli
from test_ser_corpora import evaluate_test_split

from s3prl_emoaware.corpora.layouts import iemocap as iemocap_layout
from s3prl_emoaware.corpora.reader import detect_layout, read_corpus
from s3prl_emoaware.corpora.synth import synthesize_corpus
from s3prl_emoaware.corpora.validate import check_audio_headers, check_downstream_audio
from s3prl_emoaware.downstreams.phoneme.dataset import PhoneDataset
from s3prl_emoaware.downstreams.phoneme.text import PhoneVocabulary, read_lexicon
from s3prl_emoaware.utils import audio
from s3prl_emoaware.utils.audio import AudioError, read_audio
from s3prl_emoaware.utils.errors import UserFacingError


@pytest.fixture(scope="module")
def ravdess_48k(tmp_path_factory):
    return synthesize_corpus(
        "ravdess", tmp_path_factory.mktemp("r") / "ravdess", seed=0, sample_rate=48000, appledouble=True
    )


@pytest.fixture(scope="module")
def libri_splits(tmp_path_factory):
    return synthesize_corpus(
        "librispeech",
        tmp_path_factory.mktemp("l") / "LibriSpeech",
        seed=0,
        appledouble=True,
        splits=("train-clean-100", "train-clean-360", "dev-clean", "test-clean"),
    )


def test_ravdess_48k_is_resampled_and_logged_once(ravdess_48k, caplog):
    utts = read_corpus(ravdess_48k)
    assert len(utts) == len(list(ravdess_48k.glob("Actor_*/0*.wav"))) and not any(
        u.path.name.startswith(".") for u in utts
    )
    info = sf.info(str(utts[0].path))
    assert info.samplerate == 48000
    audio._LOGGED.clear()
    with caplog.at_level(logging.INFO, logger="s3prl_emoaware.utils.audio"):
        wavs = [read_audio(u.path, min_samples=400) for u in utts[:3]]
    assert abs(len(wavs[0]) - info.frames / 3) <= 1
    assert sum("resampling 48000 Hz" in r.message for r in caplog.records) == 1  # once, not once per file
    with pytest.raises(AudioError, match="sample rate 48000 Hz, expected 16000 Hz"):
        read_audio(utts[0].path, resample_to_expected=False)  # strict mode kept
    config = {"downstream_expert": {"datarc": {"root": str(ravdess_48k), "layout": "ravdess"}}}
    assert check_downstream_audio("emotion_ravdess", config) == len(utts)  # pre-run check: resampled, not refused
    with pytest.raises(AudioError, match="48000 Hz"):
        check_audio_headers([u.path for u in utts])


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_rates_resample_to_16k_keeping_pitch(rate, tmp_path):
    t = np.arange(rate) / rate  # one second of 440 Hz
    sf.write(str(tmp_path / "a.wav"), 0.5 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    wav = read_audio(tmp_path / "a.wav")
    assert len(wav) == 16000
    assert abs(np.argmax(np.abs(np.fft.rfft(wav))) - 440) <= 1  # 1 Hz bins over one second


def test_hidden_files_are_skipped_by_every_reader(ravdess_48k, libri_splits, tmp_path):
    assert list(ravdess_48k.rglob("._*.wav")) and (ravdess_48k / ".DS_Store").is_file()
    for kind in ("cremad", "voxceleb"):
        root = synthesize_corpus(kind, tmp_path / kind, seed=0, appledouble=True)
        utts = read_corpus(root, sets="all") if kind == "voxceleb" else read_corpus(root)
        assert utts and not any(u.path.name.startswith("._") for u in utts)
        for u in utts[:2]:
            read_audio(u.path)
    utts = read_corpus(libri_splits, splits="all")
    assert len(utts) == len(list(libri_splits.glob("*/*/*/[0-9]*.flac")))
    config = {
        "downstream_expert": {
            "corpus": {
                "path": str(libri_splits),
                "train": ["train-clean-100"],
                "dev": ["dev-clean"],
                "test": ["test-clean"],
            }
        }
    }
    assert check_downstream_audio("phoneme_recognition", config) > 0  # no ._x.flac among the checked files


def test_librispeech_split_folder_and_explicit_splits(libri_splits, caplog):
    split = libri_splits / "train-clean-360"
    assert detect_layout(split) == "librispeech" and detect_layout(libri_splits) == "librispeech"
    alone = read_corpus(split)
    assert alone and {u.session for u in alone} == {"train-clean-360"}
    with caplog.at_level(logging.INFO, logger="s3prl_emoaware.corpora.layouts.librispeech"):
        default = read_corpus(libri_splits)
    assert {u.session for u in default} == {"train-clean-100", "train-clean-360"}  # never dev/test by default
    assert any("dev-clean" in r.message and "not" in r.message for r in caplog.records)
    assert {u.session for u in read_corpus(libri_splits, splits=["dev-clean"])} == {"dev-clean"}
    with pytest.raises(UserFacingError, match="no LibriSpeech split dev-other .*found dev-clean"):
        read_corpus(libri_splits, splits=["dev-other"])
    with pytest.raises(UserFacingError, match="do not apply to the librispeech layout"):
        read_corpus(libri_splits, speakers="all")


def test_librispeech_root_without_train_split_needs_a_choice(libri_splits, tmp_path):
    root = tmp_path / "eval_only"
    for name in ("dev-clean", "test-clean"):
        shutil.copytree(libri_splits / name, root / name)
    with pytest.raises(UserFacingError, match="no train-\\* split among dev-clean, test-clean"):
        read_corpus(root)
    assert {u.session for u in read_corpus(root, splits="all")} == {"dev-clean", "test-clean"}


def test_esd_english_speakers_by_default_in_the_split_layout(tmp_path):
    root = synthesize_corpus("esd", tmp_path / "esd", seed=0, speakers=20, split=True)
    assert len(list(root.glob("00*/*/train/*.wav"))) == 20 * 4 and list(root.glob("0001/Sad/evaluation/*.wav"))
    utts = read_corpus(root)
    assert {u.speaker for u in utts} == {f"{i:04d}" for i in range(11, 21)}  # English only
    assert {u.session for u in utts} == {"train", "evaluation", "test"}
    assert {u.emotion for u in utts} == {"neu", "hap", "ang", "sad"} and len(utts) == 10 * 4 * 3
    assert {u.speaker for u in read_corpus(root, speakers="mandarin")} == {f"{i:04d}" for i in range(1, 11)}
    assert len({u.speaker for u in read_corpus(root, speakers="all")}) == 20
    assert {u.speaker for u in read_corpus(root, speakers=["12", "0013"])} == {"0012", "0013"}


def test_voxceleb_dev_set_by_default(tmp_path):
    root = synthesize_corpus("voxceleb", tmp_path / "vox", seed=0)
    meta = (root / "vox1_meta.csv").read_text()
    assert "\ttest\n" in meta and "\tdev\n" in meta
    dev = read_corpus(root)
    assert dev and {u.session for u in dev} == {"dev"}
    test = read_corpus(root, sets=["test"])
    assert test and not {u.speaker for u in dev} & {u.speaker for u in test}
    assert len(read_corpus(root, sets="all")) == len(dev) + len(test)


def test_cmudict_lexicon_comments_variants_and_stress(tmp_path):
    vocab = PhoneVocabulary(["HH", "AH", "EH", "L", "OW", "W", "ER", "D"])
    lex = tmp_path / "cmudict.txt"
    lex.write_text(
        ";;; # CMUdict  --  Major Version: 0.07\n;;; comment line\n"
        "HELLO  HH AH0 L OW1\nHELLO(2)  HH EH0 L OW1\nWORLD  W ER1 L D\n"
    )
    assert read_lexicon([lex], vocab) == {"HELLO": ["HH", "AH", "L", "OW"], "WORLD": ["W", "ER", "L", "D"]}
    stressed = PhoneVocabulary(["HH", "AH0", "EH0", "L", "OW1", "W", "ER1", "D"])  # vocab with stress: kept
    assert read_lexicon([lex], stressed)["HELLO"] == ["HH", "AH0", "L", "OW1"]


def test_words_missing_from_the_lexicon_drop_utterances_counted(tiny_librispeech, caplog):
    vocab = PhoneVocabulary.from_file(tiny_librispeech / "phones.txt")
    lexicon = read_lexicon([tiny_librispeech / "lexicon.txt"], vocab)
    texts = [
        line.split(" ", 1)[1].split()
        for t in (tiny_librispeech / "train-clean-100").glob("*/*/*.trans.txt")
        for line in t.read_text().splitlines()
    ]
    counts = {w: sum(w in t for t in texts) for w in lexicon}
    rare = min((w for w in counts if counts[w]), key=lambda w: counts[w])  # missing from a few utterances
    with caplog.at_level(logging.WARNING, logger="s3prl_emoaware.downstreams.phoneme.dataset"):
        ds = PhoneDataset(tiny_librispeech, ["train-clean-100"], {w: p for w, p in lexicon.items() if w != rare}, vocab)
    assert ds.dropped == counts[rare] and len(ds) == len(texts) - counts[rare]
    assert any(rare in r.message and f"{counts[rare]} of {len(texts)}" in r.message for r in caplog.records)
    with pytest.raises(UserFacingError, match="have words not in the lexicon .*wrong lexicon"):
        PhoneDataset(tiny_librispeech, ["train-clean-100"], {}, vocab)


def test_iemocap_release_count_warns_only_on_a_full_copy(tiny_iemocap, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="s3prl_emoaware.corpora.layouts.iemocap"):
        read_corpus(tiny_iemocap)  # generated (SYNTHETIC_CORPUS.json): not compared with the release
    assert not caplog.records
    copy = tmp_path / "IEMOCAP_full_release"
    shutil.copytree(tiny_iemocap, copy, ignore=shutil.ignore_patterns("SYNTHETIC_CORPUS.json", "meta_data"))
    with caplog.at_level(logging.WARNING, logger="s3prl_emoaware.corpora.layouts.iemocap"):
        utts = read_corpus(copy)
    n = sum(u.emotion is not None for u in utts)
    assert any(f"{n} four-class" in r.message and "5531" in r.message for r in caplog.records)
    assert not iemocap_layout.check_release_count(copy, 5, 5531)  # the release's count: silent
    assert not iemocap_layout.check_release_count(copy, 4, 100)  # fewer sessions: a subset on purpose


@pytest.mark.slow
def test_emotion_ravdess_end_to_end_on_48k_audio(ravdess_48k, tmp_path):
    override = (
        "config.runner.total_steps=4,,config.runner.eval_step=2,,config.runner.save_step=2,,"
        "config.runner.log_step=2,,config.runner.gradient_accumulate_steps=1,,"
        f"config.downstream_expert.datarc.root='{ravdess_48k}',,config.downstream_expert.datarc.num_workers=0"
    )
    expdir = tmp_path / "exp"
    # our wrapper: the shipped config and the pre-run header check (48 kHz accepted: resampled when read)
    our_cli(
        "run-downstream",
        "--no-hidden-cache",
        "-m",
        "train",
        "-u",
        "emoaware_fbank",
        "-d",
        "emotion_ravdess",
        "-o",
        override,
        "-p",
        str(expdir),
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    predicted = evaluate_test_split(expdir, tmp_path)
    assert predicted and not any(line.startswith("._") for line in predicted)
