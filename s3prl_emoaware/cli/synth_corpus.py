"""``s3prl-emoaware synth-corpus KIND OUT --seed N --size tiny|demo``: an espeak-ng corpus in an official layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..corpora.synth import KINDS, SIZES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="on-disk layout to write")
    parser.add_argument("out", type=Path, help="output folder (must not exist or be empty, unless --force)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="tiny", help="tiny: seconds to make (tests); demo: the demo's size"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    from ..corpora.synth import synthesize_corpus

    out = synthesize_corpus(args.kind, args.out, seed=args.seed, size=args.size, force=args.force)
    print(out)
    return 0
