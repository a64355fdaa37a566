"""``s3prl-emoaware train-speaker --corpus DIR --out EXPDIR [-c CONFIG]``: ECAPA with AAM-softmax on speaker labels."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-c", "--config", type=Path, help="default: shipped upstream_configs/ecapa_speaker.yaml")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, shipped_config
    from ..pretraining.run import pretrain
    from ..pretraining.trainer import PretrainRecipe
    from ..utils.errors import UserFacingError

    recipe = load_config(
        PretrainRecipe, args.config or shipped_config("upstream_configs", "ecapa_speaker"), args.override
    )
    if recipe.kind != "ecapa_speaker":
        raise UserFacingError(f"{args.config}: kind is {recipe.kind!r}, train-speaker needs kind: ecapa_speaker")
    trainer, history = pretrain(recipe, args.corpus, args.out, resume=args.resume, device=args.device)
    if trainer.rank == 0:
        print(
            f"{args.out / 'last.ckpt'}: step {trainer.step}, last loss {history[-1][1] if history else float('nan'):.4f}"
        )
    return 0
