"""``s3prl-emoaware pretrain -c CONFIG --corpus DIR [--intensity CACHE] --out EXPDIR [--masking STRATEGY]``.

Under ``torchrun --nproc_per_node N -m s3prl_emoaware.cli pretrain ...`` it trains with
DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# masking.spans.STRATEGIES, written out so that building the parser does not import torch (a test keeps them equal)
MASKING_STRATEGIES = ("random", "ems", "ems_topk", "ems_weighted", "threshold")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, required=True, help="pre-training recipe YAML")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--intensity", type=Path, help="intensity cache (needed by EMS and threshold masking)")
    parser.add_argument("--out", type=Path, required=True, help="experiment folder (checkpoints, TensorBoard)")
    parser.add_argument(
        "--masking",
        choices=MASKING_STRATEGIES,
        help="override masking.strategy (random = the original Mockingjay baseline)",
    )
    parser.add_argument("--clusters", type=Path, help="contrastive ECAPA: assignments.json of `s3prl-emoaware cluster`")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="e.g. -o training.total_steps=200"
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..pretraining.run import pretrain
    from ..pretraining.trainer import PretrainRecipe

    overrides = list(args.override) + ([f"masking.strategy={args.masking}"] if args.masking else [])
    if args.clusters:
        overrides.append(f"objective.clusters={args.clusters}")
    recipe = load_config(PretrainRecipe, args.config, overrides)
    trainer, history = pretrain(
        recipe,
        args.corpus,
        args.out,
        str(args.intensity) if args.intensity else None,
        resume=args.resume,
        device=args.device,
    )
    if trainer.rank == 0:
        last = history[-1][1] if history else float("nan")
        print(f"{args.out / 'last.ckpt'}: step {trainer.step}, last loss {last:.4f}")
    return 0
