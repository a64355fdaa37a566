"""IEMOCAP: layout, labels, the count check, and s3prl's emotion ``meta_data`` JSON files built from them.

Raw layout (as distributed)::

    SessionN/sentences/wav/<dialog>/<utt>.wav
    SessionN/dialog/EmoEvaluation/<dialog>.txt   lines "[start - end]<TAB>utt<TAB>label<TAB>[V, A, D]"

s3prl's ``emotion`` expert reads ``meta_data/SessionN/{train,test}_meta_data.json``; like
s3prl's ``IEMOCAP_preprocess.py``, :func:`prepare_iemocap_meta` keeps SUPERB's four classes
(``exc`` merged into ``hap``; ``fru``, ``sur``, ``xxx`` ... dropped) and writes, for each
session N, the utterances of session N as test and all others as train.

A copy with all five sessions should hold the release's 5,531 four-class utterances; another
count is logged as a warning (files lost in a copy or an unpacking error change SUPERB's
numbers silently). Generated corpora (``SYNTHETIC_CORPUS.json``) are not checked.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...utils.atomic import atomic_write_json
from ...utils.errors import UserFacingError
from ..espeak import SAMPLE_RATE, synthesize
from ..synth import EMOTIONS, FEMALE, MALE, SENTENCES, SizePreset, emotional_utterance, write_wav
from .common import Utterance, visible

logger = logging.getLogger(__name__)

__all__ = [
    "NAME",
    "write",
    "SUPERB_LABELS",
    "LABEL_MAP",
    "RELEASE_FOUR_CLASS",
    "detect",
    "read",
    "read_emo_evaluations",
    "prepare_iemocap_meta",
    "check_release_count",
]

NAME = "iemocap"
SUPERB_LABELS = {"neu": 0, "hap": 1, "ang": 2, "sad": 3}
LABEL_MAP = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
RELEASE_FOUR_CLASS = 5531  # neu 1708 + hap/exc 1636 + ang 1103 + sad 1084 in the released IEMOCAP
_LINE = re.compile(r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>\S+)\t(?P<label>\S+)\t")


def detect(root: Path) -> bool:
    return any(Path(root).glob("Session*/sentences/wav"))


def read_emo_evaluations(root: Path) -> List[Tuple[str, str, str]]:
    """(session, utt_id, raw label) for every label line under ``root``."""
    root = Path(root)
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise UserFacingError(f"{root}: not an IEMOCAP folder (no Session1..Session5 inside)")
    found = []
    for session in sessions:
        files = visible(session, "dialog/EmoEvaluation/*.txt")
        if not files:
            raise UserFacingError(f"{session / 'dialog' / 'EmoEvaluation'}: no label files")
        for path in files:
            for line in path.read_text(errors="replace").splitlines():
                m = _LINE.match(line)
                if m:
                    found.append((session.name, m.group("utt"), m.group("label")))
    return found


def check_release_count(root: Path, sessions: int, four_class: int) -> bool:
    """Warn (and return True) when a five-session, non-generated copy lacks the release's 5,531 utterances."""
    if sessions < 5 or (Path(root) / "SYNTHETIC_CORPUS.json").is_file() or four_class == RELEASE_FOUR_CLASS:
        return False
    logger.warning(
        "%s: %d four-class utterances (neu/hap+exc/ang/sad with audio), the IEMOCAP release has %d: "
        "files may be missing or extra, and SER numbers will not compare with SUPERB's",
        root,
        four_class,
        RELEASE_FOUR_CLASS,
    )
    return True


def _speaker(utt: str) -> str:
    # Ses01F_impro01_M003 -> Ses01M (the session prefix plus the gender of the speaking turn)
    return utt[:5] + utt.rsplit("_", 1)[-1][0]


def read(root: Path) -> List[Utterance]:
    root = Path(root)
    labels = {utt: LABEL_MAP.get(label) for _, utt, label in read_emo_evaluations(root)}
    sidecar = root / "emotional_segments.json"
    segments = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    items = []
    for wav in visible(root, "Session*/sentences/wav/*/*.wav"):
        utt = wav.stem
        seg = segments.get(utt)
        items.append(
            Utterance(
                utt, wav.resolve(), _speaker(utt), labels.get(utt), wav.parts[-5], None, tuple(seg) if seg else None
            )
        )
    check_release_count(root, len({u.session for u in items}), sum(u.emotion is not None for u in items))
    return items


def prepare_iemocap_meta(root: Path, out_meta: Path) -> Dict[str, int]:
    """Write ``out_meta/SessionN/{train,test}_meta_data.json``; return utterances kept per session."""
    root = Path(root)
    per_session: Dict[str, List[dict]] = {}
    for session, utt, label in read_emo_evaluations(root):
        if label not in LABEL_MAP:
            continue
        dialog = utt.rsplit("_", 1)[0]
        rel = f"{session}/sentences/wav/{dialog}/{utt}.wav"
        if not (root / rel).is_file():
            raise UserFacingError(f"{root / rel}: audio missing for labelled utterance {utt}")
        per_session.setdefault(session, []).append({"path": rel, "label": LABEL_MAP[label], "speaker": _speaker(utt)})
    for session, items in per_session.items():
        items.sort(key=lambda x: x["path"])
        others = [x for s, xs in sorted(per_session.items()) if s != session for x in xs]
        atomic_write_json(
            Path(out_meta) / session / "test_meta_data.json", {"labels": SUPERB_LABELS, "meta_data": items}
        )
        atomic_write_json(
            Path(out_meta) / session / "train_meta_data.json", {"labels": SUPERB_LABELS, "meta_data": others}
        )
    check_release_count(root, len(per_session), sum(len(x) for x in per_session.values()))
    return {s: len(x) for s, x in sorted(per_session.items())}


# utterance ids run F000-F899 per speaker; F900 is the disagreement utterance that write() adds
MAX_UTTS_PER_SPEAKER = 899


def write(out: Path, rng: np.random.Generator, size: SizePreset, utts_per_speaker: Optional[int] = None) -> None:
    """IEMOCAP: five sessions, a female and a male speaker each, label files and s3prl's meta_data.

    ``utts_per_speaker`` overrides the size preset's count (a larger labelled set, so that one
    fold's test session is not 48 utterances; the ems-study's ``emotion_utts_per_speaker``)."""
    per_speaker = size.iemocap_utts_per_speaker if utts_per_speaker is None else utts_per_speaker
    if not 1 <= per_speaker <= MAX_UTTS_PER_SPEAKER:
        raise ValueError(f"utts_per_speaker must be in 1..{MAX_UTTS_PER_SPEAKER}, got {per_speaker}")
    emotions = ["neu", "hap", "ang", "sad"]
    segments: Dict[str, Optional[List[float]]] = {}
    for session in range(1, 6):
        evaluations: Dict[str, List[str]] = {}
        for gender, voices in (("F", FEMALE), ("M", MALE)):
            voice = voices[(session - 1) % len(voices)]
            offset = float(rng.uniform(-8, 8))
            for i in range(per_speaker):
                emotion = emotions[i % 4]
                # real IEMOCAP labels some happy turns 'exc' (merged into hap by SUPERB)
                label = "exc" if emotion == "hap" and rng.random() < 0.3 else emotion
                dialog = f"Ses0{session}{'FM'[i % 2]}_impro0{1 + (i // 2) % 3}"
                utt = f"{dialog}_{gender}{i:03d}"
                text = SENTENCES[int(rng.integers(len(SENTENCES)))]
                intensity = float(rng.uniform(0.6, 1.0))
                mixed = emotion != "neu" and rng.random() < 0.5
                audio, segment = emotional_utterance(text, voice, emotion, intensity, offset, mixed)
                write_wav(out / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav", audio)
                segments[utt] = [round(segment[0], 4), round(segment[1], 4)] if segment else None
                t0 = round(float(rng.uniform(0, 200)), 4)
                vad = {"neu": (2.5, 2.5), "hap": (4.0, 3.5), "ang": (1.5, 4.0), "sad": (1.5, 1.5)}[emotion]
                evaluations.setdefault(dialog, []).append(
                    f"[{t0:.4f} - {t0 + len(audio) / SAMPLE_RATE:.4f}]\t{utt}\t{label}\t"
                    f"[{vad[0]:.4f}, {vad[1]:.4f}, 2.5000]"
                )
        # one utterance without evaluator agreement ('xxx'): the preparation must drop it
        dialog = f"Ses0{session}F_impro01"
        utt = f"{dialog}_F900"
        audio = synthesize(SENTENCES[0], FEMALE[(session - 1) % len(FEMALE)], EMOTIONS["neu"])
        write_wav(out / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav", audio)
        evaluations[dialog].append(f"[0.0000 - {len(audio) / SAMPLE_RATE:.4f}]\t{utt}\txxx\t[2.5000, 2.5000, 2.5000]")
        for dialog, lines in evaluations.items():
            path = out / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            body = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
            body += "".join(f"{line}\nC-E1:\tNeutral;\t()\n\n" for line in lines)
            path.write_text(body)
    (out / "emotional_segments.json").write_text(json.dumps(segments, indent=1, sort_keys=True) + "\n")
    prepare_iemocap_meta(out, out / "meta_data")
