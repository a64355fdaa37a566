"""Fluent Speech Commands: ``data/{train,valid,test}_data.csv`` naming ``wavs/speakers/<spk>/<file>.wav``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List

from .common import Utterance

__all__ = ["NAME", "detect", "read"]

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
                items.append(Utterance(Path(row["path"]).stem, audio.resolve(), row["speakerId"], None, split,
                                       row["transcription"]))
    return items
