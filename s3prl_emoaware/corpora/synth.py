"""Synthesised corpora in the official on-disk layouts (IEMOCAP, LibriSpeech, Fluent Speech Commands,
CREMA-D, ESD, RAVDESS, VoxCeleb1).

``s3prl-emoaware synth-corpus KIND OUT --seed N --size tiny|demo`` writes a corpus that the
real loaders read unchanged: s3prl's ``emotion`` expert (through the IEMOCAP meta_data JSON
files that :mod:`.iemocap` builds from the raw layout, as s3prl's ``IEMOCAP_preprocess.py``
does), our phoneme-recognition downstream (LibriSpeech layout + lexicon) and s3prl's
``fluent_commands`` expert; our CREMA-D/ESD/RAVDESS SER downstreams; the speaker-encoder
training of the contrastive method (VoxCeleb1 layout).

Speakers are espeak-ng voice variants with a per-speaker pitch offset; emotions are prosody
profiles (:data:`EMOTIONS`) blended with neutral by an intensity in [0.5, 1]. Emotion varies
inside utterances: a share of emotional IEMOCAP utterances start neutral and turn emotional
part-way, and the emotional segment's start and end (seconds) go to the sidecar
``emotional_segments.json`` (``{utt_id: [start, end]}``; neutral utterances map to null).

The same seed gives the same files, byte for byte. The corpus is built in a temporary
folder beside ``OUT`` and renamed into place at the end, so an interrupted run leaves no
half-written corpus.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..utils.atomic import ensure_writable_dir
from ..utils.errors import UserFacingError
from .espeak import SAMPLE_RATE, Prosody, phonemize, synthesize

logger = logging.getLogger(__name__)

__all__ = ["EMOTIONS", "SIZES", "KINDS", "synthesize_corpus", "CorpusExistsError"]

KINDS = ("iemocap", "librispeech", "fsc", "cremad", "esd", "ravdess", "voxceleb")

# Emotion = prosody profile (what each emotion does to pitch, range, rate and loudness).
EMOTIONS: Dict[str, Prosody] = {
    "neu": Prosody(pitch=45, pitch_range=40, rate=160, amplitude=100),
    "hap": Prosody(pitch=72, pitch_range=95, rate=190, amplitude=125),
    "ang": Prosody(pitch=62, pitch_range=80, rate=215, amplitude=185),
    "sad": Prosody(pitch=25, pitch_range=8, rate=115, amplitude=65),
}


@dataclass(frozen=True)
class SizePreset:
    """Corpus sizes: utterances per speaker (IEMOCAP), per split speakers x utterances (LibriSpeech, FSC)."""

    iemocap_utts_per_speaker: int
    libri_speakers: Tuple[int, int, int]  # train, dev, test
    libri_utts_per_speaker: int
    fsc_speakers: Tuple[int, int, int]
    fsc_utts_per_speaker: int
    voxceleb_speakers: int
    voxceleb_utts_per_speaker: int


SIZES: Dict[str, SizePreset] = {
    "tiny": SizePreset(iemocap_utts_per_speaker=5, libri_speakers=(2, 1, 1), libri_utts_per_speaker=4,
                       fsc_speakers=(2, 1, 1), fsc_utts_per_speaker=6, voxceleb_speakers=8,
                       voxceleb_utts_per_speaker=3),
    "demo": SizePreset(iemocap_utts_per_speaker=24, libri_speakers=(6, 2, 2), libri_utts_per_speaker=12,
                       fsc_speakers=(6, 2, 2), fsc_utts_per_speaker=24, voxceleb_speakers=80,
                       voxceleb_utts_per_speaker=12),
}

SENTENCES = [
    "the meeting starts at nine in the morning",
    "i left my keys on the kitchen table",
    "we should take the train to the city",
    "she found a small dog near the river",
    "they painted the old house blue last summer",
    "please close the window before you leave",
    "the weather will change again tomorrow",
    "my brother bought a new car yesterday",
    "he told me the story one more time",
    "the children played in the park all day",
    "you can call me when you get home",
    "our flight was delayed for three hours",
    "the letter arrived just after lunch",
    "i never expected to see you here",
    "the music was playing in the other room",
    "we waited for the bus in the rain",
    "that is not what i asked you to do",
    "the garden looks beautiful in spring",
    "he forgot to bring the tickets again",
    "they moved to a quiet town by the sea",
]

# espeak-ng voice variants: female and male speakers (with per-speaker pitch offsets)
_FEMALE = ["en-us+f1", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+f5"]
_MALE = ["en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m5", "en-us+m6", "en-us+m7", "en-us+m8"]


class CorpusExistsError(UserFacingError):
    pass


def _write_wav(path: Path, wav: np.ndarray, fmt: str = "WAV") -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 0.99:  # loud 'ang' prosody can clip after resampling
        wav = wav * (0.99 / peak)
    sf.write(str(path), wav, SAMPLE_RATE, subtype="PCM_16", format=fmt)


def _speaker_prosody(prosody: Prosody, offset: float) -> Prosody:
    return Prosody(float(np.clip(prosody.pitch + offset, 0, 99)), prosody.pitch_range, prosody.rate,
                   prosody.amplitude)


def _pause(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def _emotional_utterance(text: str, voice: str, emotion: str, intensity: float, offset: float,
                         mixed: bool) -> Tuple[np.ndarray, Optional[Tuple[float, float]]]:
    """Audio and emotional segment (seconds) of one utterance; ``mixed`` = neutral start, emotional end."""
    neutral = _speaker_prosody(EMOTIONS["neu"], offset)
    target = _speaker_prosody(EMOTIONS["neu"].blend(EMOTIONS[emotion], intensity), offset)
    lead = _pause(0.15)
    if emotion == "neu":
        return np.concatenate([lead, synthesize(text, voice, neutral), lead]), None
    if not mixed:
        body = synthesize(text, voice, target)
        return np.concatenate([lead, body, lead]), (len(lead) / SAMPLE_RATE, (len(lead) + len(body)) / SAMPLE_RATE)
    words = text.split()
    cut = max(1, len(words) // 2)
    first = synthesize(" ".join(words[:cut]), voice, neutral)
    second = synthesize(" ".join(words[cut:]), voice, target)
    gap = _pause(0.08)
    start = (len(lead) + len(first) + len(gap)) / SAMPLE_RATE
    audio = np.concatenate([lead, first, gap, second, lead])
    return audio, (start, start + len(second) / SAMPLE_RATE)


# --- IEMOCAP ----------------------------------------------------------------------------------

def _build_iemocap(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    from .iemocap import prepare_iemocap_meta

    emotions = ["neu", "hap", "ang", "sad"]
    segments: Dict[str, Optional[List[float]]] = {}
    for session in range(1, 6):
        evaluations: Dict[str, List[str]] = {}
        for gender, voices in (("F", _FEMALE), ("M", _MALE)):
            voice = voices[(session - 1) % len(voices)]
            offset = float(rng.uniform(-8, 8))
            for i in range(size.iemocap_utts_per_speaker):
                emotion = emotions[i % 4]
                # real IEMOCAP labels some happy turns 'exc' (merged into hap by SUPERB)
                label = "exc" if emotion == "hap" and rng.random() < 0.3 else emotion
                dialog = f"Ses0{session}{'FM'[i % 2]}_impro0{1 + (i // 2) % 3}"
                utt = f"{dialog}_{gender}{i:03d}"
                text = SENTENCES[int(rng.integers(len(SENTENCES)))]
                intensity = float(rng.uniform(0.6, 1.0))
                mixed = emotion != "neu" and rng.random() < 0.5
                audio, segment = _emotional_utterance(text, voice, emotion, intensity, offset, mixed)
                _write_wav(out / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav", audio)
                segments[utt] = [round(segment[0], 4), round(segment[1], 4)] if segment else None
                t0 = round(float(rng.uniform(0, 200)), 4)
                vad = {"neu": (2.5, 2.5), "hap": (4.0, 3.5), "ang": (1.5, 4.0), "sad": (1.5, 1.5)}[emotion]
                evaluations.setdefault(dialog, []).append(
                    f"[{t0:.4f} - {t0 + len(audio) / SAMPLE_RATE:.4f}]\t{utt}\t{label}\t"
                    f"[{vad[0]:.4f}, {vad[1]:.4f}, 2.5000]")
        # one utterance without evaluator agreement ('xxx'): the preparation must drop it
        dialog = f"Ses0{session}F_impro01"
        utt = f"{dialog}_F900"
        audio = synthesize(SENTENCES[0], _FEMALE[(session - 1) % len(_FEMALE)], EMOTIONS["neu"])
        _write_wav(out / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav", audio)
        evaluations[dialog].append(f"[0.0000 - {len(audio) / SAMPLE_RATE:.4f}]\t{utt}\txxx\t[2.5000, 2.5000, 2.5000]")
        for dialog, lines in evaluations.items():
            path = out / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            body = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
            body += "".join(f"{line}\nC-E1:\tNeutral;\t()\n\n" for line in lines)
            path.write_text(body)
    (out / "emotional_segments.json").write_text(json.dumps(segments, indent=1, sort_keys=True) + "\n")
    prepare_iemocap_meta(out, out / "meta_data")


# --- LibriSpeech ------------------------------------------------------------------------------

def _build_librispeech(out: Path, rng: np.random.Generator, size: SizePreset,
                       splits: Tuple[str, ...] = ("train-clean-100", "dev-clean", "test-clean")) -> None:
    """``splits``: split folders to write; train-*/dev-*/test-* ones get the preset's speaker counts."""
    voices = _MALE + _FEMALE
    speaker_index = 0
    words = set()
    counts = {"train": size.libri_speakers[0], "dev": size.libri_speakers[1], "test": size.libri_speakers[2]}
    for split in splits:
        n_speakers = counts.get(split.split("-")[0], size.libri_speakers[0])
        for _ in range(n_speakers):
            spk = 100 + 37 * speaker_index
            chapter = 1000 + 11 * speaker_index
            voice = voices[speaker_index % len(voices)]
            offset = float(rng.uniform(-10, 10))
            speaker_index += 1
            folder = out / split / str(spk) / str(chapter)
            lines = []
            for u in range(size.libri_utts_per_speaker):
                text = SENTENCES[int(rng.integers(len(SENTENCES)))]
                emotion = ("neu", "hap", "sad")[int(rng.integers(3))]  # read speech, some expressiveness
                prosody = _speaker_prosody(EMOTIONS["neu"].blend(EMOTIONS[emotion], 0.3), offset)
                utt = f"{spk}-{chapter}-{u:04d}"
                _write_wav(folder / f"{utt}.flac", synthesize(text, voice, prosody), fmt="FLAC")
                lines.append(f"{utt} {text.upper()}\n")
                words.update(text.upper().split())
            (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    lexicon = phonemize(sorted(words))
    (out / "lexicon.txt").write_text("".join(f"{w}\t{' '.join(p)}\n" for w, p in sorted(lexicon.items())))
    phones = sorted({p for ps in lexicon.values() for p in ps})
    (out / "phones.txt").write_text("".join(f"{p}\n" for p in phones))


# --- Fluent Speech Commands -------------------------------------------------------------------

# (action, object, location, sentence): FSC's slot vocabulary, lowercase 'none' as in the real data
FSC_COMMANDS = [
    ("activate", "lights", "kitchen", "turn on the kitchen lights"),
    ("activate", "lights", "bedroom", "switch on the lights in the bedroom"),
    ("deactivate", "lights", "kitchen", "turn off the lights in the kitchen"),
    ("deactivate", "lights", "washroom", "switch off the washroom lights"),
    ("increase", "heat", "none", "turn the heat up"),
    ("decrease", "heat", "bedroom", "lower the heat in the bedroom"),
    ("increase", "volume", "none", "make it louder"),
    ("decrease", "volume", "none", "turn the volume down"),
    ("activate", "music", "none", "play some music"),
    ("deactivate", "music", "none", "stop the music"),
    ("bring", "newspaper", "none", "bring me the newspaper"),
    ("bring", "juice", "none", "get me some juice"),
    ("change language", "Chinese", "none", "switch the language to chinese"),
    ("activate", "lamp", "none", "turn on the lamp"),
]


def _build_fsc(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    import csv

    voices = _FEMALE + _MALE
    rows: Dict[str, List[List[str]]] = {"train": [], "valid": [], "test": []}
    speaker_index = 0
    for split, n_speakers in zip(("train", "valid", "test"), size.fsc_speakers):
        for _ in range(n_speakers):
            spk = f"spk{speaker_index:02d}x{int(rng.integers(1000, 9999))}"
            voice = voices[speaker_index % len(voices)]
            offset = float(rng.uniform(-10, 10))
            speaker_index += 1
            # training speakers say every command (so valid/test slot values are all seen in train)
            order = list(range(len(FSC_COMMANDS))) if split == "train" else []
            while len(order) < size.fsc_utts_per_speaker:
                order.append(int(rng.integers(len(FSC_COMMANDS))))
            for k, idx in enumerate(order):
                action, obj, location, text = FSC_COMMANDS[idx]
                emotion = ("neu", "hap", "ang")[int(rng.integers(3))]
                prosody = _speaker_prosody(EMOTIONS["neu"].blend(EMOTIONS[emotion], 0.4), offset)
                rel = f"wavs/speakers/{spk}/{spk}_{k:04d}.wav"
                _write_wav(out / rel, synthesize(text, voice, prosody))
                rows[split].append([rel, spk, text.capitalize(), action, obj, location])
    (out / "data").mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        with open(out / "data" / f"{split}_data.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["", "path", "speakerId", "transcription", "action", "object", "location"])
            for i, row in enumerate(split_rows):
                writer.writerow([i, *row])


# --- emotional-speech corpora with file-name labels (CREMA-D, ESD, RAVDESS) ---------------------

_CREMAD_EMO = {"neu": "NEU", "hap": "HAP", "ang": "ANG", "sad": "SAD"}
_CREMAD_SENTENCES = {"IEO": "it is eleven o'clock", "TIE": "that is exactly what happened",
                     "IOM": "i'm on my way to the meeting", "DFA": "don't forget a jacket"}
_ESD_EMO = {"neu": "Neutral", "hap": "Happy", "ang": "Angry", "sad": "Sad"}
_RAVDESS_EMO = {"neu": "01", "hap": "03", "sad": "04", "ang": "05"}
_RAVDESS_STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}


def _emotional_speakers(n: int, rng: np.random.Generator):
    voices = _FEMALE + _MALE
    return [(voices[i % len(voices)], float(rng.uniform(-8, 8))) for i in range(n)]


def _build_cremad(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    """CREMA-D: AudioWAV/<ActorID>_<Sentence>_<EMO>_<LVL>.wav (LVL: LO/MD/HI/XX)."""
    n_actors = 6 if size.iemocap_utts_per_speaker <= 5 else 12
    for a, (voice, offset) in enumerate(_emotional_speakers(n_actors, rng)):
        actor = 1001 + a
        for code, text in _CREMAD_SENTENCES.items():
            for emo, tag in _CREMAD_EMO.items():
                level, intensity = [("LO", 0.5), ("MD", 0.75), ("HI", 1.0), ("XX", 0.8)][int(rng.integers(4))]
                audio, _ = _emotional_utterance(text, voice, emo, intensity, offset, mixed=False)
                _write_wav(out / "AudioWAV" / f"{actor}_{code}_{tag}_{level if emo != 'neu' else 'XX'}.wav", audio)


def _build_esd(out: Path, rng: np.random.Generator, size: SizePreset, speakers: Optional[int] = None,
               split: bool = False) -> None:
    """ESD: <spk>/<Emotion>/<spk>_<nnnnnn>.wav and <spk>/<spk>.txt.

    By default English speakers from 0011 (4 tiny, 10 demo); ``speakers=20`` writes 0001-0020 as
    the release (0001-0010 are its Mandarin speakers). ``split``: the release's
    <spk>/<Emotion>/{train,evaluation,test}/ sub-folders (utterances dealt round-robin).
    """
    n_spk = speakers or (4 if size.iemocap_utts_per_speaker <= 5 else 10)
    first = 1 if speakers else 11
    per_emotion = 3 if size.iemocap_utts_per_speaker <= 5 else 8
    for s, (voice, offset) in enumerate(_emotional_speakers(n_spk, rng)):
        spk = f"{first + s:04d}"
        lines, n = [], 0
        for emo, folder in _ESD_EMO.items():
            for k in range(per_emotion):
                n += 1
                text = SENTENCES[int(rng.integers(len(SENTENCES)))]
                audio, _ = _emotional_utterance(text, voice, emo, float(rng.uniform(0.7, 1.0)), offset, mixed=False)
                name = f"{spk}_{n:06d}"
                sub = ("train", "evaluation", "test")[k % 3] if split else ""
                _write_wav(out / spk / folder / sub / f"{name}.wav", audio)
                lines.append(f"{name}\t{text.capitalize()}.\t{folder}\n")
        (out / spk / f"{spk}.txt").write_text("".join(lines))


def _build_ravdess(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    """RAVDESS speech: Actor_XX/03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav."""
    n_actors = 6 if size.iemocap_utts_per_speaker <= 5 else 12
    for a, (voice, offset) in enumerate(_emotional_speakers(n_actors, rng)):
        actor = f"{a + 1:02d}"
        for emo, code in _RAVDESS_EMO.items():
            for level, intensity in (("01", 0.6), ("02", 1.0)):
                if emo == "neu" and level == "02":
                    continue  # RAVDESS has no strong-intensity neutral
                for stmt, text in _RAVDESS_STATEMENTS.items():
                    audio, _ = _emotional_utterance(text, voice, emo, intensity, offset, mixed=False)
                    _write_wav(out / f"Actor_{actor}" / f"03-01-{code}-{level}-{stmt}-01-{actor}.wav", audio)


# --- VoxCeleb1 ---------------------------------------------------------------------------------

def _build_voxceleb(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    """VoxCeleb1: wav/<id1xxxx>/<video id>/<nnnnn>.wav and vox1_meta.csv (tab-separated).

    What speaker encoders are trained on: many speakers, conversational rather than acted
    speech. Speakers differ in voice, habitual pitch (+-25 on espeak's scale) and rate
    (+-10%); utterances are neutral. An encoder trained here must tell speakers apart by
    pitch and rate, so it stays sensitive to them, and emotion moves those within a speaker:
    trained on emotional speech instead, the encoder learns to ignore exactly that variation
    (measured: intra-speaker emotion clusters are weaker, see README).
    """
    voices = _FEMALE + _MALE
    meta = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"))
    n_test = max(1, size.voxceleb_speakers // 10)
    for s in range(size.voxceleb_speakers):
        spk = f"id{10001 + s}"
        voice = voices[s % len(voices)]
        neutral = EMOTIONS["neu"]
        prosody = Prosody(float(np.clip(neutral.pitch + rng.uniform(-25, 25), 0, 99)), neutral.pitch_range,
                          neutral.rate * float(rng.uniform(0.9, 1.1)), neutral.amplitude)
        videos = ["".join(rng.choice(letters, 11)) for _ in range(2)]
        for u in range(size.voxceleb_utts_per_speaker):
            text = SENTENCES[int(rng.integers(len(SENTENCES)))]
            _write_wav(out / "wav" / spk / videos[u % 2] / f"{u // 2 + 1:05d}.wav", synthesize(text, voice, prosody))
        gender = "f" if voice in _FEMALE else "m"
        meta.append(f"{spk}\tSpeaker_{s:04d}\t{gender}\tUSA\t{'test' if s < n_test else 'dev'}")
    (out / "vox1_meta.csv").write_text("\n".join(meta) + "\n")


# --- quirks of released copies, applied to a built corpus -----------------------------------------

_APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4066)  # resource-fork header


def _rewrite_rate(out: Path, rate: int) -> None:
    """Every audio file resampled to ``rate`` Hz (48 kHz RAVDESS, 44.1 kHz or 8 kHz copies)."""
    import soundfile as sf

    from ..utils.audio import resample

    for path in sorted(p for p in out.rglob("*") if p.suffix in (".wav", ".flac")):
        wav, orig = sf.read(str(path), dtype="float32")
        sf.write(str(path), np.clip(resample(wav, orig, rate), -1, 1), rate, subtype="PCM_16",
                 format="FLAC" if path.suffix == ".flac" else "WAV")


def _add_appledouble(out: Path) -> None:
    """A macOS ``._name`` beside every file and a ``.DS_Store``, as a copy from a Mac's external disk has."""
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        (path.parent / f"._{path.name}").write_bytes(_APPLEDOUBLE)
    (out / ".DS_Store").write_bytes(bytes(16))


_BUILDERS = {"iemocap": _build_iemocap, "librispeech": _build_librispeech, "fsc": _build_fsc,
             "cremad": _build_cremad, "esd": _build_esd, "ravdess": _build_ravdess, "voxceleb": _build_voxceleb}


def synthesize_corpus(kind: str, out, seed: int = 0, size: str = "tiny", force: bool = False,
                      sample_rate: int = SAMPLE_RATE, appledouble: bool = False, **layout_options) -> Path:
    """Build corpus ``kind`` into ``out`` (atomically); return ``out``.

    Quirks of released copies, for testing the readers on audio: ``sample_rate`` (audio written
    at that rate, e.g. 48000 as RAVDESS), ``appledouble`` (macOS ``._x`` files beside every
    file), and the layout's own ``layout_options``: ``splits`` (LibriSpeech split folders),
    ``speakers``/``split`` (ESD: 20 speakers, train/evaluation/test sub-folders).
    """
    if kind not in _BUILDERS:
        raise UserFacingError(f"unknown corpus kind {kind!r}; choose one of {', '.join(KINDS)}")
    if size not in SIZES:
        raise UserFacingError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    import inspect

    accepted = set(inspect.signature(_BUILDERS[kind]).parameters) - {"out", "rng", "size"}
    if set(layout_options) - accepted:
        raise UserFacingError(f"option(s) {', '.join(sorted(set(layout_options) - accepted))} do not apply to "
                              f"{kind} (it takes {', '.join(sorted(accepted)) or 'none'})")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise CorpusExistsError(f"{out}: output folder exists and is not empty (use --force to replace it)")
    ensure_writable_dir(out.parent if out.parent != Path("") else Path("."))
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        marker = {"kind": kind, "seed": seed, "size": size, "generator": "s3prl-emoaware synth-corpus (espeak-ng)"}
        quirks = {k: v for k, v in (("sample_rate", sample_rate), ("appledouble", appledouble)) if v not in
                  (SAMPLE_RATE, False)}
        quirks.update({k: list(v) if isinstance(v, tuple) else v for k, v in layout_options.items()})
        if quirks:
            marker["quirks"] = quirks
        # the marker first: readers (IEMOCAP's count check) see a generated corpus while it is built
        (tmp / "SYNTHETIC_CORPUS.json").write_text(json.dumps(marker, indent=1) + "\n")
        _BUILDERS[kind](tmp, np.random.default_rng(seed), SIZES[size], **layout_options)
        if sample_rate != SAMPLE_RATE:
            _rewrite_rate(tmp, sample_rate)
        if appledouble:
            _add_appledouble(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("wrote %s corpus (%s, seed %d) to %s", kind, size, seed, out)
    return out
