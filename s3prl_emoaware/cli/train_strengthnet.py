"""``s3prl-emoaware train-strengthnet --corpus DIR --out EXPDIR [-c CONFIG] [-o key=value] [--eval-corpus DIR]
[--resume]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        type=Path,
        required=True,
        help="emotion-labelled corpus (any labelled layout: ESD, IEMOCAP, CREMA-D, RAVDESS)",
    )
    parser.add_argument("--out", type=Path, required=True, help="experiment folder (checkpoint, ranker, logs)")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="StrengthNetRecipe YAML (default: shipped upstream_configs/strengthnet.yaml)",
    )
    parser.add_argument(
        "-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="e.g. -o training.epochs=10"
    )
    parser.add_argument(
        "--eval-corpus",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also evaluate on every labelled utterance of this corpus (cross-corpus; "
        "metrics.json 'cross_corpus'); repeatable",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from OUT/resume.ckpt (same config)"
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, shipped_config
    from ..intensity.train import StrengthNetRecipe, train_strengthnet

    recipe = load_config(
        StrengthNetRecipe, args.config or shipped_config("upstream_configs", "strengthnet"), args.override
    )
    metrics = train_strengthnet(args.corpus, args.out, recipe, eval_corpora=args.eval_corpus, resume=args.resume)
    print(json.dumps({k: v for k, v in metrics.items() if k != "skipped"}, indent=1, default=float))
    return 0
