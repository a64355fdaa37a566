"""Fluent Speech Commands: ``data/{train,valid,test}_data.csv`` naming ``wavs/speakers/<spk>/<file>.wav``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..espeak import synthesize
from ..synth import EMOTIONS, FEMALE, MALE, SizePreset, speaker_prosody, write_wav
from .common import Utterance

__all__ = ["NAME", "write", "detect", "read"]

NAME = "fsc"


def detect(root: Path) -> bool:
    return (Path(root) / "data" / "train_data.csv").is_file() and (Path(root) / "wavs").is_dir()


def read(root: Path) -> List[Utterance]:
    root = Path(root)
    items = []
    for split in ("train", "valid", "test"):
        path = root / "data" / f"{split}_data.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                audio = root / row["path"]
                items.append(
                    Utterance(
                        Path(row["path"]).stem, audio.resolve(), row["speakerId"], None, split, row["transcription"]
                    )
                )
    return items


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


def write(out: Path, rng: np.random.Generator, size: SizePreset) -> None:
    import csv

    voices = FEMALE + MALE
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
                prosody = speaker_prosody(EMOTIONS["neu"].blend(EMOTIONS[emotion], 0.4), offset)
                rel = f"wavs/speakers/{spk}/{spk}_{k:04d}.wav"
                write_wav(out / rel, synthesize(text, voice, prosody))
                rows[split].append([rel, spk, text.capitalize(), action, obj, location])
    (out / "data").mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        with open(out / "data" / f"{split}_data.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["", "path", "speakerId", "transcription", "action", "object", "location"])
            for i, row in enumerate(split_rows):
                writer.writerow([i, *row])
