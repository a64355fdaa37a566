"""VoxCeleb1: ``wav/<id1xxxx>/<video id>/<nnnnn>.wav`` and ``vox1_meta.csv`` (tab-separated, column ``Set``).

Speaker training reads the ``dev`` set by default (``sets=("dev",)``): the 40 ``test`` speakers
are VoxCeleb1's verification test set. ``sets="all"`` reads every speaker; without the meta
file every speaker is read and the log says the test speakers could not be excluded.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from ...utils.errors import UserFacingError
from ..espeak import Prosody, synthesize
from ..synth import EMOTIONS, FEMALE, MALE, SENTENCES, SizePreset, write_wav
from .common import Utterance, visible

logger = logging.getLogger(__name__)

__all__ = ["NAME", "write", "detect", "read", "read_sets"]

NAME = "voxceleb"


def detect(root: Path) -> bool:
    return any(Path(root).glob("wav/id*/*/*.wav"))


def read_sets(meta: Path) -> Dict[str, str]:
    """Speaker id -> ``Set`` (``dev``/``test``) from ``vox1_meta.csv``."""
    with open(meta, newline="") as f:
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f, delimiter="\t")]
    if rows and not {"VoxCeleb1 ID", "Set"} <= set(rows[0]):
        raise UserFacingError(f"{meta}: expected tab-separated columns 'VoxCeleb1 ID' and 'Set'")
    return {row["VoxCeleb1 ID"]: row["Set"] for row in rows}


def read(root: Path, sets: Union[str, Sequence[str]] = ("dev",)) -> List[Utterance]:
    root = Path(root)
    meta = root / "vox1_meta.csv"
    speaker_sets = read_sets(meta) if meta.is_file() else {}
    items = []
    for wav in visible(root, "wav/id*/*/*.wav"):
        spk, video = wav.parts[-3], wav.parts[-2]
        items.append(Utterance(f"{spk}-{video}-{wav.stem}", wav.resolve(), spk, None, speaker_sets.get(spk)))
    if sets == "all":
        return items
    wanted = {sets} if isinstance(sets, str) else set(sets)
    if not speaker_sets:
        logger.warning("%s: no vox1_meta.csv, so the test speakers cannot be excluded (sets=%r ignored)", root, sets)
        return items
    kept = [u for u in items if u.session in wanted]
    dropped = {u.speaker for u in items} - {u.speaker for u in kept}
    if dropped:
        logger.info(
            "%s: reading VoxCeleb1 sets %s (%d speakers of other sets or not in vox1_meta.csv left out)",
            root,
            ", ".join(sorted(wanted)),
            len(dropped),
        )
    if not kept:
        raise UserFacingError(f"{root}: no speaker of set(s) {', '.join(sorted(wanted))} in vox1_meta.csv")
    return kept


def write(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    """VoxCeleb1: wav/<id1xxxx>/<video id>/<nnnnn>.wav and vox1_meta.csv (tab-separated).

    What speaker encoders are trained on: many speakers, conversational rather than acted
    speech. Speakers differ in voice, habitual pitch (+-25 on espeak's scale) and rate
    (+-10%); utterances are neutral. An encoder trained here must tell speakers apart by
    pitch and rate, so it stays sensitive to them, and emotion moves those within a speaker:
    trained on emotional speech instead, the encoder learns to ignore exactly that variation
    (measured: intra-speaker emotion clusters are weaker, see docs/results.md).
    """
    voices = FEMALE + MALE
    meta = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"))
    n_test = max(1, size.voxceleb_speakers // 10)
    for s in range(size.voxceleb_speakers):
        spk = f"id{10001 + s}"
        voice = voices[s % len(voices)]
        neutral = EMOTIONS["neu"]
        prosody = Prosody(
            float(np.clip(neutral.pitch + rng.uniform(-25, 25), 0, 99)),
            neutral.pitch_range,
            neutral.rate * float(rng.uniform(0.9, 1.1)),
            neutral.amplitude,
        )
        videos = ["".join(rng.choice(letters, 11)) for _ in range(2)]
        for u in range(size.voxceleb_utts_per_speaker):
            text = SENTENCES[int(rng.integers(len(SENTENCES)))]
            write_wav(out / "wav" / spk / videos[u % 2] / f"{u // 2 + 1:05d}.wav", synthesize(text, voice, prosody))
        gender = "f" if voice in FEMALE else "m"
        meta.append(f"{spk}\tSpeaker_{s:04d}\t{gender}\tUSA\t{'test' if s < n_test else 'dev'}")
    (out / "vox1_meta.csv").write_text("\n".join(meta) + "\n")
