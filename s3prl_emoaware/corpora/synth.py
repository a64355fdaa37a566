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

Each layout's writer (``write``) lives beside its reader in :mod:`.layouts`; this module holds
what the writers share (voices, emotions, sizes) and the build: options for the quirks of
released copies (another sample rate, macOS AppleDouble files) applied to any layout.

The same seed gives the same files, byte for byte. The corpus is built in a temporary
folder beside ``OUT`` (``.OUT.tmp-HOST-PID``) and renamed into place at the end, so an
interrupted run leaves no half-written corpus; the next build removes the folder a killed one
left. A full disk is one :class:`~s3prl_emoaware.utils.atomic.DiskFullError` line naming
``OUT`` (and the file): audio is encoded in memory and written by Python, since libsndfile
writing a path itself reports a full disk with no reason (``LibsndfileError(2, "Error opening
'/dev/full': ")``, measured); the temporary folder is removed and a corpus already at ``OUT``
(``--force``) stays as it was.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..utils.atomic import DiskFullError, ensure_writable_dir, is_disk_full
from ..utils.errors import UserFacingError
from ..utils.locks import process_running
from .espeak import SAMPLE_RATE, Prosody, synthesize

logger = logging.getLogger(__name__)

__all__ = [
    "MARKER",
    "read_marker",
    "EMOTIONS",
    "SIZES",
    "KINDS",
    "SENTENCES",
    "FEMALE",
    "MALE",
    "SizePreset",
    "synthesize_corpus",
    "CorpusExistsError",
    "write_wav",
    "speaker_prosody",
    "pause",
    "emotional_utterance",
    "emotional_speakers",
]

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
    "tiny": SizePreset(
        iemocap_utts_per_speaker=5,
        libri_speakers=(2, 1, 1),
        libri_utts_per_speaker=4,
        fsc_speakers=(2, 1, 1),
        fsc_utts_per_speaker=6,
        voxceleb_speakers=8,
        voxceleb_utts_per_speaker=3,
    ),
    "demo": SizePreset(
        iemocap_utts_per_speaker=24,
        # 24 training speakers (288 utterances): with 6 (72 utterances) CTC phoneme recognition on NPC was bimodal,
        # PER 35-91 across runner seeds of one checkpoint (docs/results.md "Phoneme recognition: data and step size").
        libri_speakers=(24, 2, 2),
        libri_utts_per_speaker=12,
        fsc_speakers=(6, 2, 2),
        fsc_utts_per_speaker=24,
        voxceleb_speakers=80,
        voxceleb_utts_per_speaker=12,
    ),
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
FEMALE = ["en-us+f1", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+f5"]
MALE = ["en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m5", "en-us+m6", "en-us+m7", "en-us+m8"]


class CorpusExistsError(UserFacingError):
    pass


def _write_audio(path: Path, wav: np.ndarray, rate: int, fmt: str) -> None:
    """16-bit ``fmt`` audio encoded in memory, then written by Python: a full disk is an ``OSError``
    with its errno and the file's name (see the module docstring)."""
    import soundfile as sf

    encoded = io.BytesIO()
    sf.write(encoded, wav, rate, subtype="PCM_16", format=fmt)
    try:
        path.write_bytes(encoded.getvalue())
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None


def write_wav(path: Path, wav: np.ndarray, fmt: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 0.99:  # loud 'ang' prosody can clip after resampling
        wav = wav * (0.99 / peak)
    _write_audio(path, wav, SAMPLE_RATE, fmt)


def speaker_prosody(prosody: Prosody, offset: float) -> Prosody:
    return Prosody(float(np.clip(prosody.pitch + offset, 0, 99)), prosody.pitch_range, prosody.rate, prosody.amplitude)


def pause(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def emotional_utterance(
    text: str, voice: str, emotion: str, intensity: float, offset: float, mixed: bool
) -> Tuple[np.ndarray, Optional[Tuple[float, float]]]:
    """Audio and emotional segment (seconds) of one utterance; ``mixed`` = neutral start, emotional end."""
    neutral = speaker_prosody(EMOTIONS["neu"], offset)
    target = speaker_prosody(EMOTIONS["neu"].blend(EMOTIONS[emotion], intensity), offset)
    lead = pause(0.15)
    if emotion == "neu":
        return np.concatenate([lead, synthesize(text, voice, neutral), lead]), None
    if not mixed:
        body = synthesize(text, voice, target)
        return np.concatenate([lead, body, lead]), (len(lead) / SAMPLE_RATE, (len(lead) + len(body)) / SAMPLE_RATE)
    words = text.split()
    cut = max(1, len(words) // 2)
    first = synthesize(" ".join(words[:cut]), voice, neutral)
    second = synthesize(" ".join(words[cut:]), voice, target)
    gap = pause(0.08)
    start = (len(lead) + len(first) + len(gap)) / SAMPLE_RATE
    audio = np.concatenate([lead, first, gap, second, lead])
    return audio, (start, start + len(second) / SAMPLE_RATE)


def emotional_speakers(n: int, rng: np.random.Generator):
    voices = FEMALE + MALE
    return [(voices[i % len(voices)], float(rng.uniform(-8, 8))) for i in range(n)]


# --- quirks of released copies, applied to a built corpus -----------------------------------------

_APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4066)  # resource-fork header


MARKER = "SYNTHETIC_CORPUS.json"  # what a generated corpus says of itself: kind, seed, size, quirks


def read_marker(corpus) -> Optional[dict]:
    """The generator's marker of ``corpus``; None for a corpus without one (a real copy)."""
    path = Path(corpus) / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserFacingError(f"{path}: unreadable generator marker ({err})") from None


def _rewrite_rate(out: Path, rate: int) -> None:
    """Every audio file resampled to ``rate`` Hz (48 kHz RAVDESS, 44.1 kHz or 8 kHz copies)."""
    import soundfile as sf

    from ..utils.audio import resample

    for path in sorted(p for p in out.rglob("*") if p.suffix in (".wav", ".flac")):
        wav, orig = sf.read(str(path), dtype="float32")
        _write_audio(path, np.clip(resample(wav, orig, rate), -1, 1), rate, "FLAC" if path.suffix == ".flac" else "WAV")


def _add_appledouble(out: Path) -> None:
    """A macOS ``._name`` beside every file and a ``.DS_Store``, as a copy from a Mac's external disk has."""
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        (path.parent / f"._{path.name}").write_bytes(_APPLEDOUBLE)
    (out / ".DS_Store").write_bytes(bytes(16))


def _remove_dead_builds(out: Path) -> None:
    """The build folders beside ``out`` of processes of this host that no longer run (a killed build)."""
    prefix = f".{out.name}.tmp-{socket.gethostname()}-"
    for old in out.parent.glob(glob.escape(prefix) + "*"):
        pid = old.name[len(prefix) :]
        if pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
            logger.info("removed %s, the unfinished build of pid %s, which no longer runs", old, pid)


def _writers():
    from .layouts import REGISTRY  # each layout's writer lives beside its reader

    return {kind: REGISTRY[kind].write for kind in KINDS}


def synthesize_corpus(
    kind: str,
    out,
    seed: int = 0,
    size: str = "tiny",
    force: bool = False,
    sample_rate: int = SAMPLE_RATE,
    appledouble: bool = False,
    **layout_options,
) -> Path:
    """Build corpus ``kind`` into ``out`` (atomically); return ``out``.

    Quirks of released copies, for testing the readers on audio: ``sample_rate`` (audio written
    at that rate, e.g. 48000 as RAVDESS), ``appledouble`` (macOS ``._x`` files beside every
    file), and the layout's own ``layout_options``: ``splits`` (LibriSpeech split folders),
    ``speakers``/``split`` (ESD: 20 speakers, train/evaluation/test sub-folders).
    """
    if kind not in KINDS:
        raise UserFacingError(f"unknown corpus kind {kind!r}; choose one of {', '.join(KINDS)}")
    if size not in SIZES:
        raise UserFacingError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    import inspect

    accepted = set(inspect.signature(_writers()[kind]).parameters) - {"out", "rng", "size"}
    if set(layout_options) - accepted:
        raise UserFacingError(
            f"option(s) {', '.join(sorted(set(layout_options) - accepted))} do not apply to "
            f"{kind} (it takes {', '.join(sorted(accepted)) or 'none'})"
        )
    out = Path(out)
    existing = out.exists() and any(out.iterdir())
    if existing and not force:
        raise CorpusExistsError(f"{out}: output folder exists and is not empty (use --force to replace it)")
    ensure_writable_dir(out.parent if out.parent != Path("") else Path("."))
    _remove_dead_builds(out)
    tmp = out.parent / f".{out.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        marker = {"kind": kind, "seed": seed, "size": size, "generator": "s3prl-emoaware synth-corpus (espeak-ng)"}
        quirks = {
            k: v
            for k, v in (("sample_rate", sample_rate), ("appledouble", appledouble))
            if v not in (SAMPLE_RATE, False)
        }
        quirks.update({k: list(v) if isinstance(v, tuple) else v for k, v in layout_options.items()})
        if quirks:
            marker["quirks"] = quirks
        # the marker first: readers (IEMOCAP's count check) see a generated corpus while it is built
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _writers()[kind](tmp, np.random.default_rng(seed), SIZES[size], **layout_options)
        if sample_rate != SAMPLE_RATE:
            _rewrite_rate(tmp, sample_rate)
        if appledouble:
            _add_appledouble(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except Exception as err:
        if not is_disk_full(err, out.parent):
            raise
        where = f" (writing {err.filename})" if getattr(err, "filename", None) else ""
        kept = f"the corpus already in {out} is unchanged" if existing else f"nothing was left under {out}"
        raise DiskFullError(
            f"{out}: no space left on device while generating the corpus{where}; {kept}; free some space and re-run"
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("wrote %s corpus (%s, seed %d) to %s", kind, size, seed, out)
    return out
