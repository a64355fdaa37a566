"""``s3prl-emoaware train-strengthnet --corpus DIR --out EXPDIR [-c CONFIG] [-o key=value]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True, help="emotion-labelled corpus (IEMOCAP layout)")
    parser.add_argument("--out", type=Path, required=True, help="experiment folder (checkpoint, ranker, logs)")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="StrengthNetRecipe YAML (default: shipped upstream_configs/strengthnet.yaml)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="e.g. -o training.epochs=10")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, shipped_config
    from ..intensity.train import StrengthNetRecipe, train_strengthnet

    recipe = load_config(StrengthNetRecipe, args.config or shipped_config("upstream_configs", "strengthnet"),
                         args.override)
    metrics = train_strengthnet(args.corpus, args.out, recipe)
    print(json.dumps({k: v for k, v in metrics.items() if k != "skipped"}, indent=1, default=float))
    return 0
